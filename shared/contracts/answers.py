"""What the platform answers a client's entry with, besides the lifecycle feed (docs/contract.md):
a query's reply on its `replyto`, and one outcome per entry written into a lane, on that lane's
`alluse.outcomes.<L>`. Models of the wire contract: the AsyncAPI document and the JSON Schemas
are generated from them."""

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.messages import QUERY_FAILED, QUERY_RESULT

ENTRY_APPLIED = "alluse.entry.applied"
ENTRY_DUPLICATE = "alluse.entry.duplicate"
ENTRY_REFUSED = "alluse.entry.refused"
# Refusal codes of entries that never reached a decision: given up after failed deliveries
# (dead-lettered), or that the router could not move out of their lane.
DEAD_LETTERED = "dead_lettered"
UNDELIVERABLE = "undeliverable"
DELIVERY_CODES = (DEAD_LETTERED, UNDELIVERABLE)


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class QueryResult(Answer):
    """`alluse.query.result`: the query's answer; its fields depend on the query's type."""


class QueryFailed(Answer):
    """`alluse.query.failed`: the query was refused or could not be answered."""

    code: str = Field(description="machine-readable, e.g. unknown_account, forbidden")
    reason: str
    query_type: str
    query_id: str


class EventRef(Answer):
    type: str
    id: str


class EntryRef(Answer):
    source: str
    id: str


class Outcome(Answer):
    stream: str = Field(description="the logical stream the entry was written to, no prefix")
    type: str = Field(description="the entry's type, as sent")
    source: str = Field(description="the entry's source, as sent")
    id: str = Field(description="the entry's id, as sent")


class EntryApplied(Outcome):
    """`alluse.entry.applied`: the entry took effect; the events it caused, in order."""

    events: list[EventRef] = Field(description="each lifecycle event it caused: type and id")


class EntryDuplicate(Outcome):
    """`alluse.entry.duplicate`: the same (source, id) was applied before; nothing new happened."""

    of: EntryRef = Field(description="the applied entry this one repeats")


class EntryRefused(Outcome):
    """`alluse.entry.refused`: the entry changed nothing; why, in `code` and `reason`."""

    code: str = Field(description="machine-readable refusal code (docs/contract.md)")
    reason: str
    dataschema: str | None = Field(default=None, description="schema URI of the refusal")


REPLY_TYPES: dict[str, type[Answer]] = {QUERY_RESULT: QueryResult, QUERY_FAILED: QueryFailed}
OUTCOME_TYPES: dict[str, type[Answer]] = {
    ENTRY_APPLIED: EntryApplied,
    ENTRY_DUPLICATE: EntryDuplicate,
    ENTRY_REFUSED: EntryRefused,
}


class AuditRecorded(Answer):
    """`alluse.audit.recorded`: one record of the audit trail, kept by the security service."""

    action: str = Field(description="what happened, e.g. account.created, command.denied")
    actor: str = Field(description="who did it: a token's subject, a service, or anonymous")
    subject: str | None = Field(default=None, description="what it happened to, e.g. an account")
    details: dict[str, object] = Field(description="secret-looking keys redacted at any depth")


class AuditBatchRecord(AuditRecorded):
    """One record of an `alluse.audit.batch`: an `alluse.audit.recorded`'s data with the
    attributes that make it a record of its own (its id, time and cause)."""

    id: str = Field(
        min_length=1,
        max_length=200,
        description="the record's id, as an `alluse.audit.recorded` of it would have; with the"
        " entry's `source`, the key the security service stores it under, once",
    )
    time: AwareDatetime = Field(description="when it happened (RFC 3339 with offset)")
    causationid: str | None = Field(
        default=None, max_length=200, description="the id of the entry it is about"
    )
    correlationid: str | None = Field(default=None, max_length=200)


class AuditBatch(Answer):
    """`alluse.audit.batch`: the audit records of one batch a service processed, in order,
    under one signature; the security service chains each record on its own."""

    records: list[AuditBatchRecord] = Field(
        min_length=1, description="each record, in the order its writer made them"
    )
