"""Run report email (placeholder until the reports work lands)."""


def run_report_send(*, run) -> None:
    return None
