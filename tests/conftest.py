import sys
from pathlib import Path

# tests/imagebuild.py is a helper module of the suite, not of minipod.
sys.path.insert(0, str(Path(__file__).parent))
