from x0tta6bl4.sync.main import main

raise SystemExit(main())
