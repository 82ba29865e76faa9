from x0tta6bl4.ops.main import main

raise SystemExit(main())
