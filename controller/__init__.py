"""The multinet controller: a kopf operator for PodNetwork objects."""
