"""``submit``: ends the run. A manager task's submission names the chosen proposal."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from lancer.core.tool import ToolArgs, ToolError, ToolResult


class SubmitArgs(ToolArgs):
    pass


class ManagerSubmitArgs(ToolArgs):
    proposal_id: int = Field(description="The id of the proposal you choose.")


class SubmitTool:
    name: ClassVar[str] = "submit"
    description: ClassVar[str] = (
        "Submit your work and end the run. Your changes to the repository are the submission; "
        "call this once you have made and checked the fix."
    )
    Args: ClassVar[type[ToolArgs]] = SubmitArgs

    def run(self, args: SubmitArgs) -> ToolResult:
        return ToolResult("Submitted.", submitted=True, answer={})

    def close(self) -> None:
        pass


class ManagerSubmitTool:
    name: ClassVar[str] = "submit"
    description: ClassVar[str] = "Submit the id of the proposal you choose and end the run."
    Args: ClassVar[type[ToolArgs]] = ManagerSubmitArgs

    def __init__(self, proposal_ids: list[int]) -> None:
        self._ids = proposal_ids

    def run(self, args: ManagerSubmitArgs) -> ToolResult:
        if args.proposal_id not in self._ids:
            raise ToolError(f"there is no proposal {args.proposal_id}; the proposals are {self._ids}")
        return ToolResult(
            f"Submitted proposal {args.proposal_id}.", submitted=True, answer={"proposal_id": args.proposal_id}
        )

    def close(self) -> None:
        pass
