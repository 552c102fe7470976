import sys

from ftdist.cli import main

sys.exit(main())
