//! Device drivers and protocol codecs for hallq (filled in by the printer work).
