"""Place a maintenance notice file on hosts: reversible, harmless, and enough to rehearse the
whole lifecycle (dry run, apply, verify, resume, rollback) against real hosts."""

from __future__ import annotations

import posixpath

from pydantic import BaseModel, ConfigDict, Field

from ..core.ops import WriteFile
from ..core.step import Step, StepContext, Verification, fail

DEFAULT_MESSAGE = "Mail service maintenance in progress: lists and mail may be delayed."


class NoticeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(DEFAULT_MESSAGE, min_length=1)
    hosts: list[str] = Field(default_factory=list, description="hosts to mark; default: every host")


class MaintenanceNotice(Step):
    id = "demo.notice"
    title = "Place a maintenance notice"
    Params = NoticeParams

    def targets(self, ctx: StepContext) -> list:
        inventory = ctx.inventory
        if self.params.hosts:
            return [inventory.host(name) for name in self.params.hosts]
        return list(inventory.hosts.values())

    def content(self) -> bytes:
        return (self.params.message.rstrip("\n") + "\n").encode()

    def fail_for_unknown_hosts(self, ctx: StepContext) -> None:
        unknown = [h for h in self.params.hosts if h not in ctx.inventory.hosts]
        if unknown:
            fail(f"unknown host(s): {', '.join(unknown)}")

    def fail_for_hosts_without_notice_path(self, ctx: StepContext) -> None:
        missing = [h.name for h in self.targets(ctx) if not h.vars.get("maintenance_notice_path")]
        if missing:
            fail(f"no maintenance_notice_path in the inventory for: {', '.join(missing)}")

    def fail_for_missing_parent_folder(self, ctx: StepContext) -> None:
        for host in self.targets(ctx):
            folder = posixpath.dirname(host.var("maintenance_notice_path"))
            if not ctx.read(host.name, ["test", "-d", folder]).ok:
                fail(f"{host.name}: folder {folder} does not exist")

    def plan(self, ctx: StepContext) -> list:
        return [WriteFile(h.name, h.var("maintenance_notice_path"), self.content(), 0o644)
                for h in self.targets(ctx)]

    def verify(self, ctx: StepContext) -> Verification:
        result = Verification(self.id)
        for host in self.targets(ctx):
            path = host.var("maintenance_notice_path")
            found = ctx.read_file(host.name, path)
            result.add(f"{host.name}:{path}", self.params.message,
                       None if found is None else found.decode("utf-8", "replace").rstrip("\n"))
        return result
