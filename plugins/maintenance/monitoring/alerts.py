"""Thursday's alert rule review, on Prometheus's own history (procedures 2.2 and 6.1).

Per alerting rule over the lookback (30 days by default): the firing episodes read from the raw
``ALERTS`` samples Prometheus stored (each evaluation writes one), how long each lasted, and
which were false positives: an episode that ended within the policy's few minutes while no
incident was open and no silence covered it. Noisy rules (a false-positive rate above the
policy's) and rules that never fired are findings, each with a proposed change written as a
patch to the rules file and checked with ``promtool check rules``: a longer ``for:`` that the
false positives would not have outlasted, or a threshold at what the expression really reached.
Nothing is rewritten: the patch waits for a person.
"""

from __future__ import annotations

import difflib
import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from maintenance.findings import Finding
from maintenance.security.http import ServiceUnavailable, get_json


@dataclass(frozen=True)
class Episode:
    start: datetime
    end: datetime  # the last firing sample, plus one evaluation interval
    false_positive: bool = False
    why: str = ""

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "minutes": round(self.minutes, 2),
                "false_positive": self.false_positive, "why": self.why}


@dataclass
class RuleReview:
    rule: str
    group: str
    query: str
    for_seconds: float
    health: str
    error: str = ""
    episodes: list[Episode] = field(default_factory=list)
    firing_share: float = 0.0
    verdict: str = "ok"  # ok, unhealthy, noisy, never_fired
    proposal: str = ""
    patch: str = ""
    check: str = ""  # promtool's word on the patched file
    age_days: float | None = None
    observed: float | None = None

    @property
    def false_positives(self) -> int:
        return sum(e.false_positive for e in self.episodes)

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / len(self.episodes) if self.episodes else 0.0

    def as_dict(self) -> dict:
        data = asdict(self) | {"episodes": [e.as_dict() for e in self.episodes],
                               "false_positives": self.false_positives,
                               "false_positive_rate": round(self.false_positive_rate, 4)}
        return data


def _api(base: str, path: str, timeout: float) -> dict:
    answer = get_json(f"{base}{path}", timeout=timeout)
    if not answer or answer.get("status") != "success":
        raise ServiceUnavailable(f"{base}{path.split('?', 1)[0]}: {answer and answer.get('error')}")
    return answer["data"]


def alerting_rules(base: str, timeout: float) -> list[dict]:
    groups = _api(base, "/api/v1/rules?type=alert", timeout)["groups"]
    return [rule | {"group": g["name"], "interval": g.get("interval", 60)} for g in groups
            for rule in g["rules"] if rule.get("type") == "alerting"]


def firing_samples(base: str, now: datetime, lookback: timedelta, timeout: float) -> dict[str, list[float]]:
    """alertname -> the times (epoch seconds) of its firing samples over the lookback, all label
    sets together: an alert fires while any of its series does."""
    seconds = int(lookback.total_seconds())
    query = quote(f'ALERTS{{alertstate="firing"}}[{seconds}s]')
    data = _api(base, f"/api/v1/query?query={query}&time={now.timestamp():.3f}", timeout)
    found: dict[str, set[float]] = {}
    for series in data["result"]:
        found.setdefault(series["metric"].get("alertname", ""), set()).update(float(t) for t, _ in series["values"])
    return {name: sorted(times) for name, times in found.items()}


def episodes_of(times: list[float], interval: float) -> list[tuple[datetime, datetime]]:
    """Runs of samples no more than two evaluation intervals apart; each lasts until one interval
    after its last sample (the evaluation that no longer found it firing)."""
    runs, start, last = [], None, None
    for t in times:
        if start is None:
            start = last = t
        elif t - last > 2 * interval:
            runs.append((start, last))
            start = last = t
        else:
            last = t
    if start is not None:
        runs.append((start, last))
    return [(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b + interval, UTC)) for a, b in runs]


def _overlaps(a_start, a_end, b_start, b_end) -> bool:
    return a_start < (b_end or datetime.max.replace(tzinfo=UTC)) and b_start < a_end


def judge(start: datetime, end: datetime, *, max_minutes: float, incidents, silences) -> Episode:
    """A false positive: over within ``max_minutes``, no incident open meanwhile, no silence on it."""
    minutes = (end - start).total_seconds() / 60
    if minutes > max_minutes:
        return Episode(start, end, False, f"lasted {minutes:.0f} min")
    for opened, resolved in incidents:
        if _overlaps(start, end, opened, resolved):
            return Episode(start, end, False, f"an incident was open (from {opened.isoformat()})")
    for silence_start, silence_end, silence_id in silences:
        if _overlaps(start, end, silence_start, silence_end):
            return Episode(start, end, False, f"silenced ({silence_id})")
    return Episode(start, end, True, f"over in {minutes:.1f} min, no incident, no silence")


def silences_for(alertmanager_url: str, timeout: float) -> dict[str, list[tuple[datetime, datetime, str]]]:
    """Alertmanager's silences (active and expired ones it still keeps), by the alertname they
    match exactly; a silence that names no alertname covers every alert it matches ('*')."""
    if not alertmanager_url:
        return {}
    answer = get_json(f"{alertmanager_url.rstrip('/')}/api/v2/silences", timeout=timeout)
    if answer is None:
        raise ServiceUnavailable(f"{alertmanager_url}/api/v2/silences: no answer")
    found: dict[str, list] = {}
    for s in answer:
        names = [m["value"] for m in s.get("matchers", []) if m["name"] == "alertname" and m.get("isEqual", True)
                 and not m.get("isRegex")]
        span = (datetime.fromisoformat(s["startsAt"].replace("Z", "+00:00")),
                datetime.fromisoformat(s["endsAt"].replace("Z", "+00:00")), s["id"])
        for name in names or ["*"]:
            found.setdefault(name, []).append(span)
    return found


# --- proposals as patches --------------------------------------------------------------------------

_THRESHOLD = re.compile(r"^(?P<lhs>.+?)\s*(?P<op>>=|<=|>|<)\s*(?P<value>-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


def _duration(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes // 60}h{minutes % 60}m" if minutes >= 60 and minutes % 60 else (
        f"{minutes // 60}h" if minutes >= 60 else f"{minutes}m")


def _rule_block(lines: list[str], name: str) -> tuple[int, int, int]:
    """(first line, end line, indent) of ``- alert: name`` in the rules file's lines."""
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)- alert:\s*['\"]?" + re.escape(name) + r"['\"]?\s*$", line)
        if match:
            indent = len(match[1])
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
                end += 1
            return i, end, indent
    raise LookupError(name)


def propose_for(text: str, name: str, seconds: float) -> str:
    """The rules file with ``name``'s ``for:`` set to ``seconds`` (added when it has none)."""
    lines = text.splitlines(keepends=True)
    first, end, indent = _rule_block(lines, name)
    field_indent = " " * (indent + 2)
    for i in range(first + 1, end):
        if re.match(r"^\s*for:\s*", lines[i]):
            lines[i] = f"{field_indent}for: {_duration(seconds)}\n"
            return "".join(lines)
    expr = next(i for i in range(first + 1, end) if re.match(r"^\s*expr:", lines[i]))
    lines.insert(expr + 1, f"{field_indent}for: {_duration(seconds)}\n")
    return "".join(lines)


def propose_threshold(text: str, name: str, value: float) -> str:
    lines = text.splitlines(keepends=True)
    first, end, _ = _rule_block(lines, name)
    for i in range(first + 1, end):
        match = re.match(r"^(\s*expr:\s*)(.+?)\s*$", lines[i])
        if match:
            parts = simple_threshold(match[2])
            if not parts:
                raise ValueError(f"{name}: its expression is not `<query> <op> <number>`")
            lines[i] = f"{match[1]}{parts['lhs']} {parts['op']} {value:.6g}\n"
            return "".join(lines)
    raise ValueError(f"{name}: no single-line expr")


def check_rules(text: str) -> str:
    """``promtool check rules`` on ``text``: 'ok', or what promtool said is wrong."""
    promtool = shutil.which("promtool")
    if not promtool:
        return "not checked: promtool is not installed on this worker"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yml"
        path.write_text(text)
        done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                              check=False)
    return "ok" if done.returncode == 0 else (done.stdout + done.stderr).strip()[-800:]


def unified(before: str, after: str, path: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{path}", f"b/{path}"))


def simple_threshold(expr: str):
    """``<query> <op> <number>`` with no other comparison or set operator in the query: the only
    shape whose threshold can be moved without changing what the rule means."""
    parts = _THRESHOLD.match(expr.strip())
    if not parts:
        return None
    bare = re.sub(r"\{[^}]*\}", "", parts["lhs"])  # label matchers may hold != and =~
    if re.search(r"[<>]|==|!=|\b(and|or|unless|bool)\b", bare):
        return None
    return parts


def observed_value(base: str, rule: dict, now: datetime, lookback: timedelta, timeout: float) -> float | None:
    """What the left side of ``expr > N`` reached over the lookback (its maximum; for ``<``, its
    minimum): the threshold at which the rule would have fired once."""
    parts = simple_threshold(rule.get("query", ""))
    if not parts:
        return None
    how = "max" if parts["op"].startswith(">") else "min"
    query = quote(f"{how}({how}_over_time(({parts['lhs']})[{int(lookback.total_seconds())}s:5m]))")
    data = _api(base, f"/api/v1/query?query={query}&time={now.timestamp():.3f}", timeout)
    return float(data["result"][0]["value"][1]) if data["result"] else None


def rule_ages(path: Path, names: list[str], now: datetime) -> dict[str, float]:
    """Days since each rule first appeared in the rules file's git history (the file's age when it
    is not in a git checkout); rules not found are left out."""
    ages = {}
    for name in names:
        done = subprocess.run(["git", "log", "--reverse", "--format=%ct", "-S", f"alert: {name}", "--", path.name],
                              cwd=path.parent, capture_output=True, text=True, timeout=30, check=False)
        first = done.stdout.split()[0] if done.returncode == 0 and done.stdout.split() else None
        since = float(first) if first else (path.stat().st_mtime if path.exists() else None)
        if since is not None:
            ages[name] = round((now.timestamp() - since) / 86400, 1)
    return ages


def review(base_url: str, *, now: datetime, lookback_days: float, false_positive_minutes: float,
           noisy_false_positive_rate: float, incidents: list, silences: dict, timeout: float,
           rules_text: str | None = None, rules_path: str = "rules.yml", rule_ages=None) -> dict:
    """``rule_ages``: a function of the alerting rules' names giving each one's age in days."""
    base = base_url.rstrip("/")
    lookback = timedelta(days=lookback_days)
    rules = alerting_rules(base, timeout)
    ages = rule_ages([r["name"] for r in rules]) if rule_ages else {}
    samples = firing_samples(base, now, lookback, timeout)
    reviews = []
    for rule in rules:
        item = RuleReview(rule["name"], rule["group"], rule.get("query", ""), float(rule.get("duration", 0)),
                          rule.get("health", "unknown"), rule.get("lastError", ""),
                          age_days=ages.get(rule["name"]))
        interval = float(rule.get("interval") or 60)
        item.episodes = [judge(a, b, max_minutes=false_positive_minutes, incidents=incidents,
                               silences=silences.get(rule["name"], []) + silences.get("*", []))
                         for a, b in episodes_of(samples.get(rule["name"], []), interval)]
        item.firing_share = round(sum((e.end - e.start).total_seconds() for e in item.episodes)
                                  / lookback.total_seconds(), 4)
        if item.health not in ("ok", "unknown"):
            item.verdict = "unhealthy"
        elif item.episodes and item.false_positive_rate > noisy_false_positive_rate:
            item.verdict = "noisy"
            propose_longer_for(item, rules_text, rules_path)
        elif not item.episodes:
            item.verdict = "never_fired"
            item.observed = observed_value(base, rule, now, lookback, timeout)
            propose_observed_threshold(item, rules_text, rules_path, lookback_days)
        reviews.append(item)
    return {"window_days": lookback_days, "rules": [r.as_dict() for r in reviews],
            "unhealthy": [r.rule for r in reviews if r.verdict == "unhealthy"],
            "noisy": [r.rule for r in reviews if r.verdict == "noisy"],
            "never_fired": [r.rule for r in reviews if r.verdict == "never_fired"]}


def propose_longer_for(item: RuleReview, rules_text: str | None, rules_path: str) -> None:
    """A ``for:`` that outlasts the longest false positive by a minute: an alert fires only after
    its ``for:``, so none of them would have fired."""
    longest = max(e.end - e.start for e in item.episodes if e.false_positive).total_seconds()
    proposed = item.for_seconds + longest + 60
    was = _duration(item.for_seconds) if item.for_seconds else "none"
    item.proposal = (f"for: {_duration(proposed)} (was {was}): {item.false_positives} of {len(item.episodes)} "
                     f"firings were over within {longest / 60:.0f} min with no incident and no silence")
    if rules_text is not None:
        item.patch, item.check = _patch(rules_text, rules_path, lambda t: propose_for(t, item.rule, proposed))


def propose_observed_threshold(item: RuleReview, rules_text: str | None, rules_path: str, days: float) -> None:
    """For a rule that never fired: the threshold at which it would have fired once."""
    if item.observed is None:
        item.proposal = "no proposal: its expression is not `<query> <op> <number>`, or it had no data"
        return
    item.proposal = (f"threshold {item.observed:.6g}: the furthest its expression reached in {days:g} days; "
                     "or keep it, if it guards something that must never happen")
    if rules_text is not None:
        item.patch, item.check = _patch(rules_text, rules_path,
                                        lambda t: propose_threshold(t, item.rule, item.observed))


def _patch(text: str, path: str, change) -> tuple[str, str]:
    try:
        after = change(text)
    except (LookupError, ValueError) as exc:
        return "", f"no patch: {exc}"
    return unified(text, after, path), check_rules(after)


_EVIDENCE = ("group", "query", "for_seconds", "firing_share", "false_positives", "false_positive_rate", "proposal",
             "patch", "check", "age_days", "observed")


def findings(found: dict, lookback_days: float) -> list[Finding]:
    """The review's findings: unhealthy, noisy and never-fired rules, each with its evidence (the
    proposal, its patch and promtool's word, the last episodes)."""
    out = []
    for item in found["rules"]:
        evidence = {k: item[k] for k in _EVIDENCE} | {"episodes": item["episodes"][-20:]}
        if item["verdict"] == "unhealthy":
            out.append(Finding("alert_rule_unhealthy", item["rule"], "warning",
                               f"Prometheus cannot evaluate it: {item['error']}", evidence))
        elif item["verdict"] == "noisy":
            out.append(Finding("alert_rule_noisy", item["rule"], "warning",
                               f"{item['false_positives']} of {len(item['episodes'])} firings in {lookback_days:g} "
                               f"days were false positives ({item['false_positive_rate']:.0%}); proposed "
                               f"{item['proposal']}", evidence))
        elif item["verdict"] == "never_fired":
            age = f", in the rules for {item['age_days']:g} days" if item["age_days"] is not None else ""
            out.append(Finding("alert_rule_never_fired", item["rule"], "info",
                               f"never fired in {lookback_days:g} days{age}; {item['proposal']}", evidence))
    return out
