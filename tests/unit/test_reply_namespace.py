"""The reply namespace: a caller may name as `replyto` only keys under its own token subject."""

from shared.contracts.trust import reply_namespace, replyto_allowed


def test_a_callers_replies_lie_under_its_own_subject() -> None:
    space = reply_namespace("p.", "user-7")
    assert space == "p.alluse.reply.user-7."
    assert replyto_allowed("p.", "user-7", space + "q1")
    assert not replyto_allowed("p.", "user-7", space)  # the namespace itself is no reply key
    assert not replyto_allowed("p.", "user-7", "p.alluse.account.lifecycle")
    assert not replyto_allowed("p.", "user-7", None)


def test_no_namespace_lies_inside_another_when_subjects_contain_dots() -> None:
    # Client 'eng' must not write into the replies of client 'eng.x', nor the other way round.
    theirs = reply_namespace("", "eng.x") + "q1"
    assert not replyto_allowed("", "eng", theirs)
    assert not replyto_allowed("", "eng.x", reply_namespace("", "eng") + "x.q1")
    assert replyto_allowed("", "eng.x", theirs)
    # An escaped spelling is not a way in either.
    assert not replyto_allowed("", "eng%2Ex", theirs)
