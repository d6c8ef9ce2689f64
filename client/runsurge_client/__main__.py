import sys

from runsurge_client.cli import main

sys.exit(main())
