"""Images: references, platform choice, registry pulls and the image store."""
