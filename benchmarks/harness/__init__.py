"""Machinery the gracekit benchmarks share.

Start apps under uvicorn (:func:`run_server`), load them with wrk (:func:`make_load`), measure
scenarios in interleaved rounds (:func:`run_rounds`), compare them by ratios with targets
(:func:`ratio`), and print and save the figures (:mod:`.report`).
See ``benchmarks/README.md`` for a walk-through.

Benchmarks are scripts in ``benchmarks/``: run by path, their directory comes first on
``sys.path``, which is how ``import harness`` finds this package.
"""

from .cli import add_load_options as add_load_options
from .cli import exit_on_sigterm as exit_on_sigterm
from .cli import main as main
from .cli import positive as positive
from .cli import progress as progress
from .cli import run_benchmark as run_benchmark
from .hanging import HangingListener as HangingListener
from .load import Load as Load
from .load import WrkLoad as WrkLoad
from .load import make_load as make_load
from .report import environment as environment
from .report import header_lines as header_lines
from .report import ratio_lines as ratio_lines
from .report import results as results
from .report import table_lines as table_lines
from .report import write_json as write_json
from .rounds import Scenario as Scenario
from .rounds import run_rounds as run_rounds
from .servers import Server as Server
from .servers import UvicornApp as UvicornApp
from .servers import fetch as fetch
from .servers import free_port as free_port
from .servers import run_server as run_server
from .servers import run_servers as run_servers
from .session import measure_rounds as measure_rounds
from .session import serving as serving
from .stats import Ratio as Ratio
from .stats import Sample as Sample
from .stats import noise_warning as noise_warning
from .stats import percentile as percentile
from .stats import ratio as ratio
from .stats import summarize as summarize

__all__ = [
    "HangingListener",
    "Load",
    "Ratio",
    "Sample",
    "Scenario",
    "Server",
    "UvicornApp",
    "WrkLoad",
    "add_load_options",
    "environment",
    "exit_on_sigterm",
    "fetch",
    "free_port",
    "header_lines",
    "main",
    "make_load",
    "measure_rounds",
    "noise_warning",
    "percentile",
    "positive",
    "progress",
    "ratio",
    "ratio_lines",
    "results",
    "run_benchmark",
    "run_rounds",
    "run_server",
    "run_servers",
    "serving",
    "summarize",
    "table_lines",
    "write_json",
]
