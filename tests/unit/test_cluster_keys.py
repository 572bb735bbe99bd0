"""On a Redis Cluster, the keys one Lua step or MULTI names together must share a slot."""

import pytest
from redis.crc import key_slot

from services.security.redis_acl import acl_file
from shared.contracts.streams import ACL_USERS, CONSUMED, Streams
from shared.infra.runtime.redisclient import is_cluster, seeds


@pytest.mark.parametrize("prefix", ["", "staging.", "t0123456789.ab12cd34."])
@pytest.mark.parametrize("name", CONSUMED)
def test_partitions_and_leases_share_the_public_streams_slot(prefix: str, name: str) -> None:
    s = Streams(prefix)
    stream = s.key(name)  # the public name is unchanged: producers keep writing to it
    beside = [s.beside(stream, f".p{i}") for i in range(16)]
    beside += [s.beside(stream, ".lease.router"), s.beside(stream, ".lease.p3")]
    assert {key_slot(k.encode()) for k in beside} == {key_slot(stream.encode())}
    assert all(k.startswith(prefix) for k in beside)  # still under the deployment's prefix


def test_the_streams_themselves_spread_over_slots() -> None:
    s = Streams("")
    assert len({key_slot(s.key(n).encode()) for n in CONSUMED}) == len(CONSUMED)


def test_a_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="may not hold"):
        Streams("{tenant}.")


def test_the_acl_names_the_tagged_keys_of_ordered_consumption() -> None:
    passwords = {f"ALLUSE_REDIS_PASSWORD_{u.upper()}": "x" * 16 for u in ACL_USERS}
    line = next(x for x in acl_file(passwords, "p.").splitlines() if x.startswith("user account"))
    assert "~p.{p.alluse.account.commands}.p*" in line
    assert "~p.{p.alluse.account.commands}.lease.*" in line
    assert "~p.{p.alluse.internal.account.effects}.members" in line


def test_a_cluster_url_names_its_seed_nodes() -> None:
    url = "redis+cluster://svc:secret@10.0.0.1:7000,10.0.0.2:7001,[::1]/0"
    assert is_cluster(url) and not is_cluster("redis://10.0.0.1:6379/0")
    first, nodes = seeds(url)
    assert first == "redis://svc:secret@10.0.0.1:7000/0"  # its options, for every node
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 6379)]
    assert seeds("rediss+cluster://h:1?ssl_cert_reqs=none")[0] == "rediss://h:1?ssl_cert_reqs=none"
    with pytest.raises(ValueError, match="no seed host"):
        seeds("redis+cluster:///0")
