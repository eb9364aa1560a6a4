from rnnlab import distributed
from rnnlab.cli import main

distributed.exit_process(main())  # SystemExit, or _exit in a process of a distributed run
