"""Run LiteRT's own benchmark tool (``litert-benchmark``, shipped with ai-edge-litert)
unchanged, except that its figures are not rounded to 0.01 ms.

The tool's timing loop (``CompiledModel.run_by_name`` between two ``perf_counter`` calls)
is untouched; only the module-level ``round`` used when it builds its result is replaced,
because 0.01 ms is 10% of a 0.1 ms model. Prints one line: ``JSON: {latency figures}``.
Usage: python benchmarks/vendor_litert.py --model=M.tflite --num_threads=1 --num_runs=N
Smoke test: its one size is ``--num_runs`` (tests/test_benchmarks.py: 5); compare_vendors.py --smoke runs it too.
"""

import json
import sys

from ai_edge_litert.tools import benchmark_litert_model as tool

tool.round = lambda x, ndigits=None: x  # shadows the builtin inside the tool's module only

if __name__ == "__main__":
    sys.argv = ["litert-benchmark", *sys.argv[1:]]
    result = tool.run_benchmark(tool.parse_args())
    print("JSON:", json.dumps(result["latency"]))
