import sys

from benchrun.cli.main import main

sys.exit(main())
