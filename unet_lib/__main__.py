"""``python -m unet_lib ...`` runs the command line (see ``unet_lib.cli``)."""

from unet_lib.cli import main

raise SystemExit(main())
