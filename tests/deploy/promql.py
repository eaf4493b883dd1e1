"""The metric and label names a PromQL query reads (enough of PromQL for dashboards: selectors,
aggregations with by/without, functions, ranges, arithmetic, Grafana's label_values)."""

import re

FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "irate", "increase", "delta", "histogram_quantile",
             "clamp_min", "clamp_max", "max_over_time", "min_over_time", "avg_over_time", "abs", "round",
             "time", "vector", "scalar", "topk", "bottomk", "label_values"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*$", re.S)


class PromQLError(ValueError):
    """A query uses a function this reader does not know (and so cannot tell from a metric)."""


def names(query: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) the query reads."""
    labels: set[str] = set()
    if m := _LABEL_VALUES.match(query):
        query, label = m.groups()
        labels.add(label)
    query = _STRING.sub('""', query)
    for m in _MATCHERS.finditer(query):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(1)))
    query = _MATCHERS.sub(" ", query)
    for m in _GROUPING.finditer(query):
        labels |= set(_NAME.findall(m.group(1)))
    query = re.sub(r"\[[^\]]*\]", " ", _GROUPING.sub(" ", query))  # and the range selectors
    metrics: set[str] = set()
    for m in _NAME.finditer(query):
        token = m.group(0)
        if query[m.end():].lstrip().startswith("("):
            if token not in FUNCTIONS:
                raise PromQLError(f"unknown function {token!r}")
        elif token not in KEYWORDS:
            metrics.add(token)
    return metrics, labels
