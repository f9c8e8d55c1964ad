"""The lessons' views: what a reader sees and moves, drawn from the package's numbers.

* :mod:`.figures` -- matplotlib figures in one style (heatmaps, patterns, QK rows, eigenvalues);
* :mod:`.explore` -- what each explorer shows for given inputs, as plain functions (no widgets);
* :mod:`.widgets` -- the live explorers (ipywidgets 7.7 and 8), or a static picture on the website;
* :mod:`.webfigs` -- plotly figures with sliders, computed when the website is built (needs plotly);
* :mod:`.attention` -- a token-level attention view (point at a token, see where each head looks),
  one self-contained HTML fragment (``attention.js``, ``attention.css``) for lessons and website.

May import the science and model modules of :mod:`toymodel` (circuits, model, checkpoint, tasks,
experiments, worked_example) and matplotlib, ipywidgets or plotly; the science never imports a view.
Nothing here is imported by ``import toymodel``: a lesson imports the view it uses.
"""
