from x0tta6bl4.identity.main import main

raise SystemExit(main())
