"""The conversion runtime: the worker pool, a whole document through it, intake of uploads (PDF checks, images
wrapped as PDFs) and screen renders for the web page. The page algorithms it runs live in app/pipeline/, which
never imports this package."""
