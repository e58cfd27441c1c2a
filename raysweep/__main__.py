from raysweep.run import main

raise SystemExit(main())
