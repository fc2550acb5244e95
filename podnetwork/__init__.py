"""The multinet API: PodNetwork types, CRD definitions, annotation schemas and
the KEP-3698 static validations. No I/O lives here."""
