from x0tta6bl4.healer.main import main

raise SystemExit(main())
