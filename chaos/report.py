"""The chaos report as text: faults, orders, terminal states, invariants, recovery."""


def render(report):
    lines = [f"Agora chaos report ({report.get('started_at')}, {report.get('duration_s')} s)"]
    if "error" in report:
        lines.append(f"  RUN FAILED: {report['error']}")
    faults = report.get("faults", [])
    if faults:
        lines.append("")
        lines.append(
            "Faults (seconds from the start; recovery = fault end to first accepted order)"
        )
        lines.append(
            f"  {'fault':<34} {'start':>7} {'end':>7} {'recovery':>9}  notes; answers meanwhile"
        )
        for fault in faults:
            recovery = "NONE" if fault["recovery_s"] is None else f"{fault['recovery_s']:.1f}"
            answers = ", ".join(
                f"{code}: {n}" for code, n in sorted(fault.get("answers", {}).items())
            )
            notes = "; ".join([*fault["notes"], answers] if answers else fault["notes"])
            lines.append(
                f"  {fault['fault']:<34} {fault['started_s']:>7.1f} {fault['ended_s']:>7.1f} "
                f"{recovery:>9}  {notes}"
            )
    orders = report.get("orders")
    if orders:
        lines.append("")
        lines.append(
            f"Orders: {orders['placed']} placed, {orders['accepted']} accepted, "
            f"{orders['abandoned_after_retries']} abandoned after retries"
        )
        for kind, counts in orders["answers"].items():
            shown = ", ".join(f"{code}: {n}" for code, n in counts.items())
            lines.append(f"  {kind:<13} {shown}")
        states = ", ".join(f"{s}: {n}" for s, n in sorted(orders["terminal_states"].items()))
        lines.append(f"  states       {states}")
        outside = report.get("errors_outside_faults")
        if outside is not None:
            shown = ", ".join(f"{k}: {n}" for k, n in sorted(outside.items())) or "none"
            lines.append(f"  errors while no fault was under way: {shown}")
        settled = orders["settled_s_after_last_recovery"]
        lines.append(
            "  every order settled "
            + (
                "NEVER (deadline passed)"
                if settled is None
                else f"{settled} s after the last recovery"
            )
        )
    invariants = report.get("invariants", [])
    if invariants:
        lines.append("")
        lines.append("Invariants")
        for check in invariants:
            lines.append(f"  [{'PASS' if check['ok'] else 'FAIL'}] {check['name']}")
            if not check["ok"]:
                for key, value in check["detail"].items():
                    if value:
                        lines.append(f"         {key}: {value}")
    longest = report.get("longest_recovery")
    if longest:
        lines.append("")
        lines.append(f"Longest recovery: {longest['seconds']} s after {longest['fault']}")
    for name in report.get("unrecovered_faults", []):
        lines.append(f"NOT RECOVERED: {name}")
    for exit_ in report.get("unexpected_exits", []):
        lines.append(
            f"Unexpected exit: {exit_['process']} (code {exit_['code']}) at {exit_['at_s']} s"
        )
    if report.get("logs"):
        lines.append(f"Process logs: {report['logs']}")
    lines.append("")
    lines.append("RESULT: " + ("PASS" if report.get("ok") else "FAIL"))
    return "\n".join(lines)
