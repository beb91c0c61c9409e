"""Dataset writers: COCO (streaming merge of shard fragments) and crash-safe file helpers."""
