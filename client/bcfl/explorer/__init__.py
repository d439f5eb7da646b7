"""The federation's block explorer: an index that follows the chain, and a local web page over it.

`bcfl.explorer.app.Explorer` runs it; `bcfl.explorer.index` follows blocks and folds decoded
calls and events into per-round and per-peer views; `bcfl.explorer.views` turns them into the
JSON each page shows; `bcfl.explorer.pages` renders that JSON as HTML.
"""
