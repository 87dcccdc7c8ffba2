import pytest

from tests.factories import ingested_document, make_collection, make_department, make_user


@pytest.fixture
def organisation(python_docs):
    """Python's design FAQ in Engineering's collection; a member of Engineering, and an outsider from Sales."""
    engineering, sales = make_department("Engineering"), make_department("Sales")
    faq = make_collection(owner=engineering)
    ingested_document(collection=faq, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes())
    return {"member": make_user(department=engineering), "outsider": make_user(department=sales), "faq": faq}
