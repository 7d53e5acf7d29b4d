"""The data contract as a Prefect task: :func:`labelwise.tasks.contract_check.check_table`, its
report published as a markdown artifact of the flow run."""

from __future__ import annotations

from prefect import task

from labelwise.pipeline.config import Config
from labelwise.pipeline.records import ContractReport
from labelwise.tasks.contract_check import check_table, raise_for


@task(name="validate-contract", task_run_name="validate-contract-{label}")
def validate_contract(
    cfg: Config, path: str, label: str = "train", source: str | None = None
) -> ContractReport:
    """Check one table (read at ``path``, named as ``source``) against its contract (see
    ``check_table``); publish the report as an artifact; raise ContractError with a
    readable summary when it failed."""
    report = check_table(cfg, path, label, source)
    _publish(report, label)
    raise_for(report)
    return report


def _publish(report: ContractReport, label: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    rows = ["| expectation | column | observed | expected |", "|---|---|---|---|"]
    rows += [
        f"| {f['expectation']} | {f['column'] or ''} | {f['observed']} | {f['expected']} |"
        for f in report["failures"][:100]
    ]
    status = "passed" if report["success"] else "FAILED"
    body = (
        f"### Data contract `{report['suite']}`: {status}\n\n"
        f"{report['successful']} of {report['evaluated']} expectations met.\n\n"
        + ("\n".join(rows) if report["failures"] else "")
    )
    create_markdown_artifact(
        body,
        key=f"contract-{label}".lower().replace("_", "-"),
        description=f"data contract ({label})",
    )
