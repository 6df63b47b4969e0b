import sys

from sinkcast.cli import main

sys.exit(main())
