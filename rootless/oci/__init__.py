"""The OCI vocabulary shared by the store, the registry client and the builder.

``digest`` names content, ``model`` describes manifests, configs and descriptors,
``tarstream`` checks tar streams as they pass. Nothing here touches the store.
"""
