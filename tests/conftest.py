import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # localnet: real master/worker processes on loopback
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # jobs: shared job helpers
