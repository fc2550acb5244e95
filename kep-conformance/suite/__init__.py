"""The machinery of the KEP-3698 conformance suite: profiles and features,
selection, reports, the API binding, probe pods and truth tables.

Standalone by design: it imports only the standard library, `kubernetes`,
`pytest` and PyYAML, so any implementation can run it.
"""
