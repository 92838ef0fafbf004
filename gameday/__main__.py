import signal
import sys

# Until the CLI installs its own handlers: Ctrl-C while starting exits 130, quietly.
signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(130))

from gameday.cli.main import main  # noqa: E402

main()
