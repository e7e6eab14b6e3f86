"""`python -m crossrank_bench`: the benchmark's command line."""

from crossrank_bench.main import main

raise SystemExit(main())
