"""`alluse.account.reverse` (docs/rules.md section 11): a correction never edits history. The
opposite entry names the original, carries the reason, undoes the position moves booked with it, and
is announced and audited like every command."""

from services.account.domain.reversal import UnknownTransaction, decide_reversal, undo_moves
from services.account.handlers import growth
from services.account.handlers.valuation import revalue
from services.account.state.holdings import record
from services.account.state.port import Unit
from shared.contracts import account as c
from shared.contracts import lifecycle as e


async def reverse(uow: Unit, p: c.ReverseTransaction) -> None:
    found = await uow.position_store.entry(transaction_id=p.transaction_id)
    if found is None:
        raise UnknownTransaction(f"no transaction {p.transaction_id}")
    account, _ = await uow.account(found[0])
    # Read again under the account's lock: two reversals of one entry serialize here.
    _, original = await uow.position_store.entry(transaction_id=p.transaction_id) or found
    effect = decide_reversal(account, original)
    undo = undo_moves(await uow.position_store.moves_of(transaction_id=original.id))
    what = f"reversal of transaction {original.id}: {p.reason}"
    after, tx = uow.book(effect, description=what, reference=str(original.id))
    uow.balance_changed(after, tx)
    await uow.position_store.mark_reversal(
        transaction_id=tx.id, reverses=original.id, reason=p.reason
    )
    if undo:
        await record(uow, account.id, undo, tx.id, "reversal", str(original.id))
    uow.emit(
        e.AccountReversed(
            account_id=str(account.id),
            transaction_id=str(tx.id),
            reverses=str(original.id),
            type=original.type.value,
            amount=effect.amount,
            reason=p.reason,
            balance=after.balance,
            positions_undone=len(undo),
        ),
        subject=str(account.id),
    )
    await growth.after_balance_change(uow, after)  # like any cash change: a fork may be due
    await revalue(uow, account.id)
