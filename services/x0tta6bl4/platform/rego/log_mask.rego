# OPA decision-log masking for every sidecar: the break-glass token (metadata x0-break-glass,
# see policy/rego/rules.rego) never reaches a decision log; the decision names the break-glass
# entry id and justification instead. A local static file of the sidecar, like authz.rego and
# mesh.rego: package system.log lies outside the policy bundle's roots (["x0tta6bl4/policy"]),
# so the bundle cannot carry it, and masking holds before any bundle has loaded.
package system.log

import rego.v1

mask contains "/input/metadata/x0-break-glass"
