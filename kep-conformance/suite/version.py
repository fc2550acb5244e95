"""What the suite is and which text of the KEP it follows."""

from __future__ import annotations

from typing import Final

SUITE_VERSION: Final = "v0.2.0"
KEP: Final = "3698-multi-network"
# The kubernetes/enhancements commit of keps/sig-network/3698-multi-network/README.md
# whose clauses the tests cite (requirement numbers, "Status Conditions",
# "InUse state", "Static validations", "Active validations", ...).
KEP_COMMIT: Final = "1ce7bea0589f8a9306f71329c6f7b20d862b1e5d"
REPORT_API_VERSION: Final = "kep-conformance.multinetwork.x-k8s.io/v1alpha1"
