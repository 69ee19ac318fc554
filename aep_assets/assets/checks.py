"""Asset check results that say why they failed and what to do, wherever a user looks.

The UI shows a check's metadata; the run log (and so ``dagster job execute`` in a terminal) only shows that a
blocking check failed. A failed check here also logs one line with its figures and the fix, and carries the same
text as its description.
"""

import dagster as dg

SEVERITY = {"error": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def check_result(context: dg.AssetExecutionContext, check_name: str, passed: bool, metadata: dict, *,
                 why: str = "", fix: str = "", severity: str = "error") -> dg.AssetCheckResult:
    level = SEVERITY[severity]
    description = None
    if not passed:
        description = " ".join(part for part in (why.rstrip(".") + "." if why else "", f"Fix: {fix}" if fix else "")
                               if part)
        log = context.log.error if level == dg.AssetCheckSeverity.ERROR else context.log.warning
        log(f"check {check_name} failed ({severity}): {description or 'see its metadata'}")
    return dg.AssetCheckResult(check_name=check_name, passed=passed, severity=level, metadata=metadata,
                               description=description)
