"""`python -m core.jobs worker WORKSPACE [--once] [--max-parallel N]` or `run-job WORKSPACE JOB_ID`."""
import sys

from core.jobs.worker import main

sys.exit(main())
