from x0tta6bl4.consensus.main import main

raise SystemExit(main())
