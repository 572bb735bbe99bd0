"""The command forms: the same commands the CLI sends, each with the id shown on its form.

Post, then redirect (the outcome is kept in the session for the next page), so a reload never
sends a command twice; sending the same form twice reuses its id, which the platform applies
once.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from services.console import views, web
from services.console.forms import STATUSES, Problems, choice, ident, money, quarter, text
from services.console.sessions import Session
from services.console.web import local_path
from shared.contracts.envelope import CloudEvent
from shared.tooling.client import NoAnswer, Refused, until

# form -> (command type, the event that completes it, what the form is called on the page)
Build = Callable[[Problems, dict[str, str], dict[str, str]], tuple[dict[str, Any], str | None]]
Show = Callable[[CloudEvent], str]


def _move(
    p: Problems, form: dict[str, str], path: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    aid = ident(p, path, "account_id")
    data = {
        "account_id": aid,
        "amount": money(p, form, "amount"),
        "description": text(p, form, "description", most=500),
    }
    if reference := text(p, form, "reference", most=200):
        data["reference"] = reference
    return data, aid


def _status(
    p: Problems, form: dict[str, str], path: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    aid = ident(p, path, "account_id")
    data = {
        "account_id": aid,
        "status": choice(p, form, "status", STATUSES),
        "reason": text(p, form, "reason", most=500),
    }
    return data, aid


def _fork(
    p: Problems, _: dict[str, str], path: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    return {"account_id": ident(p, path, "account_id")}, None


def _merge(
    p: Problems, _: dict[str, str], path: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    return {"portfolio_id": ident(p, path, "portfolio_id")}, None


def _reinvest(
    p: Problems, form: dict[str, str], _: dict[str, str]
) -> tuple[dict[str, Any], str | None]:
    pairs = (
        ("account_id", ident(p, form, "account_id", required=False)),
        ("quarter", quarter(p, form, "quarter")),
    )
    return {k: v for k, v in pairs if v}, None


def _balance(ev: CloudEvent) -> str:
    d = ev.data
    return f"balance {views.usd(d['balance'])}, available {views.usd(d['available'])}"


FORMS: dict[str, tuple[str, str, Build, Show]] = {
    "deposit": ("alluse.account.deposit", "alluse.account.balance_changed", _move, _balance),
    "withdraw": ("alluse.account.withdraw", "alluse.account.balance_changed", _move, _balance),
    "status": (
        "alluse.account.set_status",
        "alluse.account.status_changed",
        _status,
        lambda ev: f"status {ev.data['from_status']} -> {ev.data['to_status']}",
    ),
    "fork": (
        "alluse.account.fork",
        "alluse.account.forked",
        _fork,
        lambda ev: (
            f"surplus {views.usd(ev.data['surplus'])} forked into portfolio {ev.data['child_portfolio_id']}"
        ),
    ),
    "merge": (
        "alluse.account.merge",
        "alluse.account.merged",
        _merge,
        lambda ev: f"{views.usd(ev.data['total'])} merged into {ev.data['target_account_id']}",
    ),
    "reinvest": (
        "alluse.account.reinvest",
        "alluse.account.reinvestment_completed",
        _reinvest,
        lambda ev: f"quarter {ev.data['quarter']}: {ev.data['reinvested']} accounts reinvested",
    ),
}


def handler(name: str) -> Callable[[Request], Awaitable[Response]]:
    type_, final, build, show = FORMS[name]

    async def post(request: Request) -> Response:
        me = web.session(request)
        form = await web.checked_form(request, me)
        if not web.may_send(me, type_):
            raise web.Forbidden(f"Your role '{me.role}' may not send {type_}.")
        problems = Problems()
        command_id = ident(problems, form, "command_id")
        data, subject = build(problems, form, dict(request.path_params))
        flash: dict[str, Any] = {"form": name, "id": command_id, "type": type_}
        if problems:
            flash |= {
                "kind": "problems",
                "problems": dict(problems),
                "values": {k: v for k, v in form.items() if k != "csrf"},
            }
        else:
            flash |= await _send(
                request,
                me,
                type_=type_,
                final=final,
                data=data,
                subject=subject,
                command_id=command_id,
                show=show,
            )
        me.flash = flash
        return RedirectResponse(local_path(form.get("back")), status_code=303)

    return post


async def _send(
    request: Request,
    me: Session,
    *,
    type_: str,
    final: str,
    data: dict[str, Any],
    subject: str | None,
    command_id: str,
    show: Show,
) -> dict[str, Any]:
    c = await web.client(request, me)
    try:
        events = await c.command(
            type_, data, done=until(final), subject=subject, event_id=command_id
        )
    except Refused as exc:
        return {"kind": "refused", "code": exc.code, "reason": exc.reason}
    except NoAnswer:
        return {
            "kind": "unavailable",
            "reason": "no outcome yet; send the same form again "
            "(it keeps its id, so the platform applies it once) or watch the live feed",
        }
    return {"kind": "done", "summary": show(next(e for e in events if e.type == final))}


def routes() -> list[BaseRoute]:
    return [
        Route("/accounts/{account_id}/deposit", handler("deposit"), methods=["POST"]),
        Route("/accounts/{account_id}/withdraw", handler("withdraw"), methods=["POST"]),
        Route("/accounts/{account_id}/status", handler("status"), methods=["POST"]),
        Route("/accounts/{account_id}/fork", handler("fork"), methods=["POST"]),
        Route("/portfolios/{portfolio_id}/merge", handler("merge"), methods=["POST"]),
        Route("/reinvest", handler("reinvest"), methods=["POST"]),
    ]
