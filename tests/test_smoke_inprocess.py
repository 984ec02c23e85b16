"""Quick sanity of the in-process client fixture itself."""


async def test_health_in_process(client):
    response = await client.get("/health")
    assert response.status == 200
    assert response.json()["database"] == "ok"
