// The console's only script: the live feed, live figures on an account page, chart read-outs.
// Everything is built with textContent: nothing from the platform is parsed as HTML.
"use strict";

function cell(tr, text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

function follow(url, onRow, onState) {
  const source = new EventSource(url);
  source.addEventListener("ready", () => onState("live"));
  source.addEventListener("lifecycle", (e) => onRow(JSON.parse(e.data)));
  source.addEventListener("signedout", () => {
    source.close();
    window.location.assign("/signin?expired=1&next=" + encodeURIComponent(window.location.pathname));
  });
  source.onerror = () => onState("reconnecting…");
  return source;
}

function feed(tbody) {
  const state = document.querySelector("[data-live-state]");
  const setState = (s) => { if (state) { state.textContent = s; state.dataset.state = s; } };
  follow(tbody.dataset.feed, (row) => {
    const placeholder = tbody.querySelector(".placeholder");
    if (placeholder) placeholder.remove();
    const tr = document.createElement("tr");
    tr.dataset.event = row.type;
    tr.dataset.account = row.account;
    tr.className = "fresh k-" + row.kind.replace(/[^a-z_]/g, "-").replace(/\./g, "-");
    cell(tr, row.time, "nowrap");
    cell(tr, row.kind);
    const acc = cell(tr, "", "mono");
    if (row.account) {
      const a = document.createElement("a");
      a.href = "/accounts/" + encodeURIComponent(row.account);
      a.textContent = row.account.slice(0, 8);
      acc.appendChild(a);
    }
    cell(tr, row.summary);
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > 200) tbody.deleteRow(-1);
  }, setState);
}

// An account page's figures follow its balance events, but are never taken from them: an
// event only says "changed", and the figures are read again from the account service (a genuine
// old event added to the stream again must not bring back an old balance). No backlog: the page
// was just rendered with the figures of now.
function liveFigures(section) {
  const id = section.dataset.liveAccount;
  const url = "/live/events?backlog=0&type=alluse.account.balance_changed&account=" + encodeURIComponent(id);
  let reading = false, again = false;
  const reread = async () => {
    if (reading) { again = true; return; }
    reading = true;
    try {
      do {
        again = false;
        const res = await fetch("/accounts/" + encodeURIComponent(id) + "/figures",
          {headers: {Accept: "application/json"}, cache: "no-store", redirect: "manual"});
        if (!res.ok || !(res.headers.get("content-type") || "").startsWith("application/json")) break;
        const figures = await res.json();
        for (const [key, value] of Object.entries(figures)) {
          const el = section.querySelector("[data-" + key + "]");
          if (el && el.textContent !== value) { el.textContent = value; el.classList.add("changed"); }
        }
      } while (again);
    } catch (e) {
      // the next event tries again
    } finally {
      reading = false;
    }
  };
  follow(url, (row) => { if (row.account === id) reread(); },
    (state) => { section.dataset.live = state === "live" ? "ready" : "waiting"; });
}

function chart(svg) {
  const readout = document.querySelector("[data-chart-readout]");
  svg.querySelectorAll("circle.dot").forEach((dot) => {
    dot.addEventListener("mouseenter", () => { readout.textContent = dot.dataset.at + ": " + dot.dataset.total; });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("tbody[data-feed]").forEach(feed);
  document.querySelectorAll("[data-live-account]").forEach(liveFigures);
  document.querySelectorAll("svg[data-chart]").forEach(chart);
});
