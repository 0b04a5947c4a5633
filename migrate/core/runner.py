"""Runs steps: preflight and plan all, show, confirm, then apply each with its pre-state journaled
before every operation, verify each, and roll back a failed step. Resume and rollback work from a
new process, from the journal alone.

Exit codes (also in the README):
    0  done
    1  refused or failed before anything changed (preflight, bad input, no confirmation)
    10 verification failed (the step's changes stay; fix and resume, or roll back)
    11 a step failed and its changes were rolled back (earlier steps stay applied)
    12 a rollback failed: the host state needs a human
    13 the inventory is locked by another run

Step code (preflight, plan, capture, verify, inverse) may raise anything. A `MigrateError` is a
refusal or failure the step explains; any other exception (a RecursionError on a hostile input, a
defect) is recorded in the same way as that step's failure, with its traceback in run.log, so a
keep-going run goes on with the next step and the journal always ends with `run_end`. Only an
interruption (Ctrl-C, or an error of the runner itself) stops a run: it is journaled as
`interrupted`, and the run can be resumed or rolled back like a killed one.

A step may keep what it reads on its instance. Whenever the runner plans after something changed
(a resumed step, after its rollback) or verifies a step it continued, it builds a new instance from
the journal's ref and parameters, so that no plan or verdict rests on reads made before a change.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

from . import ops as oplib
from .errors import LockHeld, MigrateError
from .executor import Executor, RunLog
from .journal import OpRecord, RunState, StateDir, StepRecord, operator as _operator
from .report import Reporter, confirm as ask
from .secrets import redact, redact_tail
from .step import Check, Step, StepContext, Verification, resolve_step
from .transport import Connections


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1
    VERIFY_FAILED = 10
    STEP_FAILED_ROLLED_BACK = 11
    ROLLBACK_FAILED = 12
    LOCKED = 13


@dataclass
class Outcome:
    run_id: str
    status: str
    exit_code: int
    message: str = ""

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "status": self.status, "exit_code": int(self.exit_code),
                "message": self.message}


class _StepFailed(Exception):
    """A step did not complete. After a failed rollback, `left` names the operations that stay
    applied: {"step", "op", "host", "operation"} each."""

    def __init__(self, code: ExitCode, status: str, message: str, left: list[dict] | None = None):
        super().__init__(message)
        self.code, self.status = code, status
        self.left = left or []


# How resume names the state an earlier process left a step in (its journal status).
_LEFT_AS = {"running": "interrupted", "verify_failed": "failed its verification"}


class Runner:
    def __init__(self, inventory, state: StateDir, *, dry_run: bool = True, yes: bool = False,
                 reason: str = "", reporter: Reporter | None = None,
                 confirm: Callable[[Reporter, str], bool] = ask, argv: list[str] | None = None,
                 keep_going: bool = False):
        # keep_going: a step refused by preflight, rolled back or failing verification does not
        # stop the steps after it (one bad list in an --all run); the exit code still says so.
        self.keep_going = keep_going
        self.inventory = inventory
        self.state = state
        self.dry_run = dry_run
        self.yes = yes
        self.reason = reason
        self.reporter = reporter or Reporter()
        self._confirm = confirm
        self.argv = list(argv if argv is not None else sys.argv)
        # What the run is doing, for the journal if it is interrupted; None before it acts.
        self._doing: str | None = None

    # -- a new run -----------------------------------------------------------------------------
    def run(self, steps: list[Step]) -> Outcome:
        journal = self.state.new_journal()
        run_id = journal.run_id
        lock = self.state.lock(self.inventory, run_id, self.reason)
        if not self.dry_run:
            try:
                lock.acquire()
            except LockHeld as exc:
                journal.close()
                _discard(journal.run_dir)
                self.reporter.error(str(exc))
                return Outcome(run_id, "locked", ExitCode.LOCKED, str(exc))
        log = RunLog(journal.run_dir / "run.log")
        connections = Connections(self.inventory)
        executor = Executor(connections, dry_run=self.dry_run, log=log)
        ctx = StepContext(self.inventory, executor)
        try:
            journal.append("run_start", run_id=run_id, operator=lock.info.operator, reason=self.reason,
                           inventory=str(self.inventory.path), inventory_sha256=self.inventory.sha256,
                           dry_run=self.dry_run, keep_going=self.keep_going, argv=self.argv,
                           steps=[{"ref": s.ref(), "id": s.id, "title": s.describe(),
                                   "params": s.params_dict()} for s in steps])
            self._doing = "planning"
            self.reporter.info(f"run {run_id}" + (" (dry run: nothing will be changed)" if self.dry_run else ""))
            plans: list[list | None] = []
            problems: list[tuple[ExitCode, str]] = []
            for i, step in enumerate(steps):
                self._doing = f"planning step {i + 1} ({step.describe()})"
                try:
                    ops, diffs = self._plan(step, ctx, log, diffs=True)
                except _StepFailed as exc:
                    if not self.keep_going:
                        return self._end(journal, "refused", ExitCode.REFUSED, str(exc))
                    journal.append("step_end", step=i, status="refused", error=str(exc))
                    self.reporter.error(str(exc))
                    problems.append((ExitCode.REFUSED, str(exc)))
                    plans.append(None)
                    continue
                self.reporter.plan(step.describe(), ops, diffs, self.dry_run)
                plans.append(ops)
            total = sum(len(p) for p in plans if p is not None)
            if self.dry_run:
                for i, (step, ops) in enumerate(zip(steps, plans)):
                    if ops is None:
                        continue
                    journal.append("step_planned", step=i, ops=[op.to_dict(journal.blobs) for op in ops])
                    for op in ops:
                        executor.execute(op)
                return self._finish(journal, problems, "dry-run",
                                    f"dry run: {total} operation(s) shown, none performed; "
                                    f"commands are listed in {log.path}")
            irreversible = [s.describe() for s, p in zip(steps, plans)
                            if p is not None and (not s.reversible or any(not op.reversible for op in p))]
            if not self.yes:
                question = f"Apply {total} operation(s) on inventory {self.inventory.name}?"
                if irreversible:
                    question += f" IRREVERSIBLE: {', '.join(irreversible)}."
                try:
                    confirmed = self._confirm(self.reporter, question)
                except KeyboardInterrupt:
                    confirmed = False  # Ctrl-C at the question is a no
                if not confirmed:
                    return self._end(journal, "aborted", ExitCode.REFUSED, "not confirmed: nothing changed")
            for i, (step, ops) in enumerate(zip(steps, plans)):
                if ops is None:
                    continue
                try:
                    self._apply_step(i, step, ops, ctx, journal, log)
                except _StepFailed as exc:
                    if exc.code == ExitCode.ROLLBACK_FAILED:
                        return self._rollback_failed(journal, exc, [
                            f"step {k + 1} ({s.describe()})" for k, (s, p) in enumerate(zip(steps, plans))
                            if k > i and p is not None])
                    if not self.keep_going:
                        raise
                    problems.append((exc.code, str(exc)))
            return self._finish(journal, problems, "done", f"{len(steps)} step(s) applied and verified")
        except _StepFailed as exc:
            return self._end(journal, exc.status, exc.code, str(exc))
        except MigrateError as exc:
            return self._end(journal, "failed", ExitCode.REFUSED, str(exc))
        except BaseException as exc:
            self._interrupted(journal, exc)
            raise
        finally:
            self._doing = None
            connections.close_all()
            log.close()
            lock.release()
            journal.close()

    def _plan(self, step: Step, ctx: StepContext, log: RunLog, *, diffs: bool) -> tuple[list, list]:
        """Preflight and plan one step, and (with `diffs`) read what each operation would change.
        Whatever goes wrong refuses this step alone: nothing has changed yet."""
        stage = "preflight"
        try:
            step.preflight(ctx)
            stage = "plan"
            ops = step.plan(ctx)
            stage = "capture"
            effects = [op.diff(op.capture(ctx.executor)) for op in ops] if diffs else [None] * len(ops)
        except Exception as exc:
            what = "preflight refused" if isinstance(exc, MigrateError) else f"{stage} failed"
            if stage == "capture":
                what = "reading the state its plan would change failed"
            raise _StepFailed(ExitCode.REFUSED, "refused",
                              f"{step.describe()}: {what}: {self._explain(exc, log)}") from None
        return ops, effects

    def _apply_step(self, index: int, step: Step, ops: list, ctx: StepContext, journal, log: RunLog) -> None:
        journal.append("step_start", step=index)
        journal.append("step_planned", step=index, ops=[op.to_dict(journal.blobs) for op in ops])
        self.reporter.heading(f"step {index + 1}: {step.describe()}")
        self._perform(index, step, [(j, op, None) for j, op in enumerate(ops)], [], ctx, journal, log)
        self._verify_step(index, step, ctx, journal, log)

    def _perform(self, index: int, step: Step, todo: list[tuple[int, oplib.Operation, OpRecord | None]],
                 started: list, ctx: StepContext, journal, log: RunLog) -> None:
        """Apply `todo` ((index in the plan, operation, its record if an earlier process started it)),
        each pre-state journaled first. `started` holds the step's operations applied so far (by an
        earlier process too); if any operation fails they are all undone and the step fails."""
        self._doing = f"applying step {index + 1} ({step.describe()})"
        with self.reporter.progress() as progress:
            task = progress.add_task(step.describe(), total=len(todo))
            for j, op, earlier in todo:
                if earlier is not None:
                    # Performed again: what it found before it first started is still the pre-state.
                    journal.append("op_start", step=index, op=j, pre_state=earlier.pre_state)
                else:
                    try:
                        pre = op.capture(ctx.executor)
                    except Exception as exc:
                        self._fail_step(index, step, started, ctx, journal, log,
                                        f"reading what `{op.describe()}` changes on {op.host} failed: "
                                        f"{self._explain(exc, log)}")
                    journal.append("op_start", step=index, op=j, pre_state=oplib.encode_state(pre, journal.blobs))
                    started.append((j, op, pre))
                try:
                    result = ctx.executor.execute(op)
                except Exception as exc:  # any failure of an operation rolls the step back
                    message = f"{op.describe()} on {op.host}: {self._explain(exc, log)}"
                    journal.append("op_end", step=index, op=j, ok=False, error=message)
                    self._fail_step(index, step, started, ctx, journal, log, message)
                journal.append("op_end", step=index, op=j, ok=True, **_output(result))
                progress.advance(task)

    def _fail_step(self, index: int, step: Step, started, ctx: StepContext, journal, log: RunLog,
                   message: str) -> None:
        self.reporter.error(message)
        self._rollback_ops(index, step, started, ctx, journal, log)
        journal.append("step_end", step=index, status="rolled_back", error=message)
        raise _StepFailed(ExitCode.STEP_FAILED_ROLLED_BACK, "failed",
                          f"step {step.describe()} failed and was rolled back: {message}")

    def _verify_step(self, index: int, step: Step, ctx: StepContext, journal, log: RunLog) -> None:
        self._doing = f"verifying step {index + 1} ({step.describe()})"
        verification = self._verification(step, ctx, log)
        journal.append("step_verified", step=index, ok=verification.ok,
                       checks=[c.to_dict() for c in verification.checks])
        self.reporter.verification(verification)
        if not verification.ok:
            journal.append("step_end", step=index, status="verify_failed")
            raise _StepFailed(ExitCode.VERIFY_FAILED, "verify_failed",
                              f"verification of {step.describe()} failed; its changes stay in place: "
                              f"fix and `runs.resume`, or `runs.rollback`")
        journal.append("step_end", step=index, status="done")
        self.reporter.ok(f"{step.describe()}: applied and verified")

    def _verification(self, step: Step, ctx: StepContext, log: RunLog | None) -> Verification:
        """The step's checks; a verification that raises is a failed check saying why."""
        try:
            return step.verify(ctx)
        except Exception as exc:
            detail = self._explain(exc, log)
            return Verification(step.id or step.describe(), [Check("verification ran", False, detail=detail)],
                                refused=detail if isinstance(exc, MigrateError) else "")

    def _rollback_ops(self, index: int, step: Step, started, ctx: StepContext, journal, log: RunLog) -> None:
        """Undo started operations in reverse order from their captured pre-state."""
        if not (self._doing or "").startswith("rolling back the run"):
            self._doing = f"rolling back step {index + 1} ({step.describe()})"
        restored = []
        for position in range(len(started) - 1, -1, -1):
            j, op, pre = started[position]
            message = ""
            if not op.reversible:
                message = (f"cannot roll back {step.describe()}: `{op.describe()}` on {op.host} is "
                           "irreversible; restore from backup or snapshot")
            else:
                try:
                    inverse = op.inverse(pre)
                    if inverse is not None:
                        ctx.executor.execute(inverse)
                except Exception as exc:
                    message = f"rollback of `{op.describe()}` on {op.host} failed: {self._explain(exc, log)}"
            if message:
                journal.append("step_end", step=index, status="rollback_failed", error=message)
                raise _StepFailed(ExitCode.ROLLBACK_FAILED, "rollback_failed", message,
                                  _left(index, started[:position + 1])) from None
            journal.append("op_rolled_back", step=index, op=j)
            restored.append((op, pre))
        try:
            check = step.verify_rolled_back(ctx, list(reversed(restored)))
        except Exception as exc:
            check = Verification(step.id or step.describe(),
                                 [Check("state after rollback read back", False, detail=self._explain(exc, log))])
        journal.append("step_rollback_verified", step=index, ok=check.ok,
                       checks=[c.to_dict() for c in check.checks])
        if not check.ok:
            self.reporter.verification(check)
            differs = "; ".join(c.name + (f" ({c.detail})" if c.detail else "") for c in check.checks if not c.ok)
            message = f"after rolling back {step.describe()} the state differs from before: {differs}"
            journal.append("step_end", step=index, status="rollback_failed", error=message)
            raise _StepFailed(ExitCode.ROLLBACK_FAILED, "rollback_failed", message)

    def _rollback_failed(self, journal, exc: _StepFailed, not_run: list[str], *,
                         not_run_as: str = "not run") -> Outcome:
        """End a run whose rollback failed (exit 12) with what a human needs: what stays applied on
        which host, which steps did not run, and how to go on."""
        run_id = journal.run_id
        parts = [str(exc)]
        if exc.left:
            parts.append("left applied: " + "; ".join(f"{e['operation']} on {e['host']}" for e in exc.left))
        if not_run:
            parts.append(f"{not_run_as}: " + "; ".join(not_run))
        parts.append(f"to recover: `invoke runs.show {run_id}` lists every operation and its outcome; fix the "
                     f"cause, then `invoke runs.rollback {run_id}` retries the undo of what is left (it also "
                     "undoes the run's other applied steps, and refuses irreversible ones: restore those from "
                     "backup), or undo it by hand" + ("; steps not run need a new run" if not_run else ""))
        return self._end(journal, exc.status, exc.code, ". ".join(parts), left=exc.left,
                         **{not_run_as.replace(" ", "_"): not_run})

    def _finish(self, journal, problems, status: str, message: str) -> Outcome:
        """End a keep-going run: done if nothing went wrong, else `partial` with the worst code."""
        if not problems:
            return self._end(journal, status, ExitCode.OK, message)
        # A rolled-back step outranks a failed verification, which outranks a refusal.
        rank = {ExitCode.STEP_FAILED_ROLLED_BACK: 3, ExitCode.VERIFY_FAILED: 2, ExitCode.REFUSED: 1}
        code = max((c for c, _ in problems), key=lambda c: rank.get(c, 0))
        return self._end(journal, "partial" if status == "done" else status, code,
                         f"{len(problems)} step(s) did not complete: " + "; ".join(m for _, m in problems))

    def _end(self, journal, status: str, code: ExitCode, message: str, **extra) -> Outcome:
        journal.append("run_end", status=status, exit_code=int(code), message=message, **extra)
        if code == ExitCode.OK:
            self.reporter.ok(message)
        else:
            self.reporter.error(message)
        return Outcome(journal.run_id, status, code, message)

    def _interrupted(self, journal, exc: BaseException) -> None:
        """Journal why a run stopped in the middle, so that it reads as interrupted, resumable."""
        if self._doing is None:
            return
        why = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else \
            f"stopped by an unexpected {type(exc).__name__}: {exc}"
        if self._doing.startswith("rolling back the run"):
            status, then = "rollback_interrupted", f"`invoke runs.rollback {journal.run_id}` finishes the rollback"
        else:
            status, then = "interrupted", (f"`invoke runs.resume {journal.run_id}` continues it, "
                                           f"`invoke runs.rollback {journal.run_id}` undoes what it applied")
        message = redact(f"run {journal.run_id} {why} while {self._doing}: {then}")
        try:
            journal.append("run_end", status=status, exit_code=None, message=message)
        except OSError:
            return  # the journal cannot take it: it reads as a killed run, which resumes the same way
        self.reporter.error(message)

    def _explain(self, exc: Exception, log: RunLog | None) -> str:
        """One line for an exception of step code. A MigrateError explains itself; anything else is
        an input the step cannot handle or a defect: its type is named, its traceback logged."""
        if isinstance(exc, MigrateError):
            return redact(str(exc))
        where = ""
        if log is not None and log.path is not None:
            for chunk in traceback.format_exception(exc, limit=-12):
                for line in chunk.rstrip("\n").splitlines():
                    log.write("error", "-", line)
            where = f"; its traceback is in {log.path}"
        return redact(f"unexpected {type(exc).__name__}: {exc} (an input this step cannot handle, or a "
                      f"defect{where})")

    # -- resume ------------------------------------------------------------------------------
    def resume(self, run_id: str) -> Outcome:
        """Continue a run after its last completed step. A step an earlier process left applied in
        part is verified first: if it verifies, the operations it had not started yet are applied
        and it is verified again; otherwise its started operations are rolled back and a new
        instance of the step is planned and applied."""
        state = self._load_for_change(run_id)
        if state.status == "done":
            return Outcome(state.run_id, "done", ExitCode.OK, f"run {state.run_id} already completed")
        if state.status in ("rolled_back", "rollback_failed"):
            raise MigrateError(f"run {state.run_id} was rolled back; start a new run instead")
        if state.status in ("rolling_back", "rollback_interrupted"):
            raise MigrateError(f"run {state.run_id} was being rolled back when it stopped: finish with "
                               f"`invoke runs.rollback {state.run_id}`, then start a new run")
        return self._with_run(state, lambda ctx, journal, steps, log: self._resume(state, ctx, journal, steps, log),
                              "resumed")

    def _resume(self, state: RunState, ctx, journal, steps: list[Step], log: RunLog) -> Outcome:
        journal.append("run_resumed", operator=_operator(), reason=self.reason)
        self._doing = "resuming"
        problems: list[tuple[ExitCode, str]] = []
        self.reporter.info(f"resuming run {state.run_id}")
        for position, (rec, step) in enumerate(zip(state.steps, steps)):
            if rec.status == "done":
                self.reporter.ok(f"step {rec.index + 1}: {step.describe()}: already done")
                continue
            try:
                if rec.applied_ops:
                    if self._settle(rec, step, ctx, journal, log):
                        continue
                    step = self._fresh(rec)  # what the verified instance read predates the rollback
                self._doing = f"planning step {rec.index + 1} ({step.describe()})"
                ops, _ = self._plan(step, ctx, log, diffs=False)
                self.reporter.plan(step.describe(), ops, [None] * len(ops), False)
                self._apply_step(rec.index, step, ops, ctx, journal, log)
            except _StepFailed as exc:
                if exc.code == ExitCode.ROLLBACK_FAILED:
                    return self._rollback_failed(journal, exc, [
                        f"step {r.index + 1} ({s.describe()})" for r, s in
                        zip(state.steps[position + 1:], steps[position + 1:]) if r.status != "done"])
                if not self.keep_going:
                    raise
                if exc.code == ExitCode.REFUSED:
                    journal.append("step_end", step=rec.index, status="refused", error=str(exc))
                    self.reporter.error(str(exc))
                problems.append((exc.code, str(exc)))
        return self._finish(journal, problems, "done", f"run {state.run_id} resumed and completed")

    def _settle(self, rec: StepRecord, step: Step, ctx, journal, log: RunLog) -> bool:
        """A step an earlier process applied in part: True once it is done (it verifies, and the
        operations it had not started are applied); False once rolled back, to be planned again."""
        label = f"step {rec.index + 1}: {step.describe()}: {_LEFT_AS.get(rec.status, rec.status)}"
        self._doing = f"verifying step {rec.index + 1} ({step.describe()})"
        verification = self._verification(step, ctx, log)
        journal.append("step_verified", step=rec.index, ok=verification.ok,
                       checks=[c.to_dict() for c in verification.checks])
        # Operations that failed or were undone leave a step that only a new plan can complete.
        intact = not any(o.rolled_back or o.ok is False for o in rec.ops if o.started)
        if verification.ok and intact:
            # What it had not started, and what was cut short and is harmless to perform again.
            todo = []
            for o in rec.ops:
                op = oplib.from_dict(o.op, journal.blobs)
                if not o.started:
                    todo.append((o.index, op, None))
                elif not o.ended and op.repeatable:
                    todo.append((o.index, op, o))
            if not todo:
                journal.append("step_end", step=rec.index, status="done")
                self.reporter.ok(f"{label}, but verifies now: done")
                return True
            self.reporter.ok(f"{label}, but verifies now: applying the {len(todo)} operation(s) it had not "
                             "completed")
            self._perform(rec.index, step, todo, self._recorded(rec, journal), ctx, journal, log)
            self._verify_step(rec.index, self._fresh(rec), ctx, journal, log)
            return True
        self.reporter.verification(verification)
        self.reporter.warn(f"{label} and is incomplete: rolling back its started operations, then "
                           "planning it again from fresh reads")
        self._rollback_recorded(rec, step, ctx, journal, log)
        journal.append("step_replan", step=rec.index)
        return False

    # -- rollback ----------------------------------------------------------------------------
    def rollback(self, run_id: str) -> Outcome:
        """Reverse every applied step of a run, last first, from the captured pre-states."""
        state = self._load_for_change(run_id)
        if state.status == "rolled_back":
            return Outcome(state.run_id, "rolled_back", ExitCode.OK, f"run {state.run_id} is already rolled back")
        return self._with_run(state, lambda ctx, journal, steps, log: self._rollback(state, ctx, journal, steps, log),
                              "rolled back")

    def _rollback(self, state: RunState, ctx, journal, steps: list[Step], log: RunLog) -> Outcome:
        todo = [(rec, step) for rec, step in zip(state.steps, steps) if rec.applied_ops]
        if not todo:
            journal.append("run_end", status="rolled_back", exit_code=0, message="nothing was applied")
            return Outcome(state.run_id, "rolled_back", ExitCode.OK, "nothing to roll back")
        for rec, step in reversed(todo):
            try:
                inverses = [op.inverse(pre) for _, op, pre in reversed(self._recorded(rec, journal))]
            except Exception as exc:
                raise MigrateError(f"cannot roll back run {state.run_id}: the undo of step {rec.index + 1} "
                                   f"({step.describe()}) cannot be built from the journal: "
                                   f"{self._explain(exc, log)}") from None
            self.reporter.plan(f"roll back {step.describe()}", [i for i in inverses if i is not None],
                               [None] * sum(i is not None for i in inverses), self.dry_run)
        if self.dry_run:
            return Outcome(state.run_id, state.status, ExitCode.OK, "dry run: nothing rolled back")
        irreversible = [step.describe() for rec, step in todo
                        if not step.reversible or any(not oplib.from_dict(o.op).reversible for o in rec.applied_ops)]
        if irreversible:
            raise MigrateError(f"cannot roll back: irreversible step(s): {', '.join(irreversible)}; "
                               "restore from backup or snapshot")
        if not self.yes and not self._confirm(self.reporter, f"Roll back run {state.run_id}?"):
            return Outcome(state.run_id, state.status, ExitCode.REFUSED, "not confirmed: nothing changed")
        journal.append("rollback_start", operator=_operator(), reason=self.reason)
        self._doing = "rolling back the run"
        undone: set[int] = set()
        current = None
        try:
            for rec, step in reversed(todo):
                current = rec.index
                self._doing = f"rolling back the run (step {rec.index + 1}: {step.describe()})"
                self.reporter.heading(f"rolling back step {rec.index + 1}: {step.describe()}")
                self._rollback_recorded(rec, step, ctx, journal, log)
                journal.append("step_end", step=rec.index, status="rolled_back")
                self.reporter.ok(f"{step.describe()}: rolled back and checked against the pre-state")
                undone.add(rec.index)
        except _StepFailed as exc:
            return self._rollback_failed(journal, exc, [
                f"step {rec.index + 1} ({step.describe()})" for rec, step in reversed(todo)
                if rec.index not in undone and rec.index != current], not_run_as="not rolled back")
        return self._end(journal, "rolled_back", ExitCode.OK, f"run {state.run_id} rolled back")

    def _recorded(self, rec: StepRecord, journal) -> list:
        """The step's applied operations from the journal: (index, operation, pre-state) each."""
        return [(o.index, oplib.from_dict(o.op, journal.blobs), oplib.decode_state(o.pre_state, journal.blobs))
                for o in rec.applied_ops]

    def _rollback_recorded(self, rec: StepRecord, step: Step, ctx, journal, log: RunLog) -> None:
        self._rollback_ops(rec.index, step, self._recorded(rec, journal), ctx, journal, log)

    @staticmethod
    def _fresh(rec: StepRecord) -> Step:
        """A new instance of a journaled step: nothing it read before is kept."""
        return resolve_step(rec.ref)(rec.params)

    # -- shared ------------------------------------------------------------------------------
    def _load_for_change(self, run_id: str) -> RunState:
        state = self.state.find_run(run_id)
        if state.dry_run:
            raise MigrateError(f"run {state.run_id} was a dry run: there is nothing to resume or roll back")
        if state.header.get("inventory_sha256") != self.inventory.sha256:
            self.reporter.warn(f"the inventory changed since run {state.run_id} was started "
                               f"({state.inventory}); continuing with the current one")
        return state

    def _with_run(self, state: RunState, body, verb: str) -> Outcome:
        lock = self.state.lock(self.inventory, state.run_id, self.reason)
        if not self.dry_run:
            holder = lock.current()
            if holder is not None and holder.run_id == state.run_id and not holder.holder_alive():
                # The run being resumed was killed while holding the lock: it is ours to take over.
                lock.break_stale()
                self.reporter.warn(f"took over the lock left by the interrupted process of this run "
                                   f"(pid {holder.pid}, since {holder.since})")
            try:
                lock.acquire()
            except LockHeld as exc:
                self.reporter.error(str(exc))
                return Outcome(state.run_id, "locked", ExitCode.LOCKED, str(exc))
        journal = self.state.open_journal(state.run_id)
        # A resumed or rolled-back run keeps the mode it was started with.
        self.keep_going = bool(state.header.get("keep_going", self.keep_going))
        log = RunLog(journal.run_dir / "run.log")
        connections = Connections(self.inventory)
        executor = Executor(connections, dry_run=self.dry_run, log=log)
        ctx = StepContext(self.inventory, executor)
        try:
            steps = [self._fresh(rec) for rec in state.steps]
            return body(ctx, journal, steps, log)
        except _StepFailed as exc:
            return self._end(journal, exc.status, exc.code, str(exc))
        except BaseException as exc:
            self._interrupted(journal, exc)
            raise
        finally:
            self._doing = None
            connections.close_all()
            log.close()
            lock.release()
            journal.close()

    # -- verify only ---------------------------------------------------------------------------
    def verify(self, steps: list[Step]) -> tuple[int, list[Verification]]:
        """Run the steps' read-only verifications; no journal, no lock, no side effect."""
        with Connections(self.inventory) as connections:
            ctx = StepContext(self.inventory, Executor(connections, dry_run=True))
            results = [self._verification(step, ctx, None) for step in steps]
        for result in results:
            self.reporter.verification(result)
        # A step that refused its input (a list that cannot be read) is bad input, exit 1, not a
        # difference between the two sides.
        if any(r.refused for r in results):
            code = ExitCode.REFUSED
            for result in results:
                if result.refused:
                    self.reporter.error(f"{result.step}: {result.refused}")
        else:
            code = ExitCode.OK if all(r.ok for r in results) else ExitCode.VERIFY_FAILED
        return code, results


OUTPUT_TAIL = 4000


def _output(result) -> dict:
    """What a command said, kept (redacted, tail only) for reports such as import21's problems."""
    if result is None or not hasattr(result, "exited"):
        return {}
    data = {"exited": result.exited}
    for name in ("stdout", "stderr"):
        text = getattr(result, name, "") or ""
        if text:
            data[name] = redact_tail(text, OUTPUT_TAIL)
    return data


def _left(index: int, started) -> list[dict]:
    """Operations still applied after a failed undo, for the message and the journal."""
    return [{"step": index, "op": j, "host": op.host, "operation": op.describe()} for j, op, _ in started]


def _discard(run_dir) -> None:
    """A run refused by the lock never started: leave no journal behind for it."""
    for child in run_dir.iterdir():
        child.unlink()
    run_dir.rmdir()
