"""Images: a content-addressed store, layer extraction, registry client, import/export and build.

Everything that enters the store is verified against its digest and size first and written
atomically; unpacked layers are keyed by chain ID and shared by every image that has them.
"""
