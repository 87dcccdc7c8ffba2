"""What the documents app announces to the apps above it, which it may not import (the layers of ARCHITECTURE.md).

Sent inside the transaction of the change: a receiver that queues work does so on commit.
"""

from django.dispatch import Signal

# A version's chunks became the serving ones of its document. Arguments: version, collection_id.
version_published = Signal()
# Searches switched to another embedding model. Arguments: model.
embedding_model_activated = Signal()
