from ssehub.cli import main

raise SystemExit(main())
