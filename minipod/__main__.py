"""`python -m minipod` runs the CLI (the agent is started this way too)."""
import sys

from minipod.runtime.cli.main import main

sys.exit(main())
