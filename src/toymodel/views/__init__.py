"""The lessons' views: what a notebook cell displays for the reader to look at and explore.

* :mod:`toymodel.views.attention` -- a token-level attention view (hover or focus a token, pick
  a head), one self-contained HTML fragment that works in JupyterLab, Colab and on the website.
"""
