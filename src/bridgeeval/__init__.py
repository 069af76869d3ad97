"""bridgeeval: does a learned cross-modal mapping really bridge two spaces?"""

__version__ = "0.1.0"
