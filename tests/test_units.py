"""The one formatter of latencies, sizes and memory figures (terminal, Markdown, HTML)."""

import pytest

from edge_opt.core.units import fmt_bytes, fmt_mib, fmt_ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.000851, "0.851 µs"),
        (0.0011, "1.10 µs"),
        (0.125, "125 µs"),
        (0.99996, "1.00 ms"),  # rounds up into the next unit, never "1000 µs"
        (1.15, "1.15 ms"),
        (523.9, "524 ms"),
        (999.99, "1.00 s"),
        (1234.5, "1.23 s"),
        (None, "–"),
        (float("nan"), "–"),
    ],
)
def test_latency_reads_in_us_ms_or_s(ms, text):
    assert fmt_ms(ms) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.00 KB"), (15688, "15.7 KB"), (999_999, "1.00 MB"), (1.5e6, "1.50 MB")],
)
def test_sizes_read_in_decimal_units_as_the_gate_budgets(n, text):
    assert fmt_bytes(n) == text


def test_memory_reads_in_mib_then_gib():
    assert (fmt_mib(50.2), fmt_mib(729), fmt_mib(2048)) == ("50.2 MiB", "729 MiB", "2.00 GiB")
