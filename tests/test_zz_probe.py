from tests.test_ws_games import *  # noqa

async def test_probe(admin, player, game_id):
    await admin.call(385, 350, game_id=game_id, description="Next goal", action="goal",
                     targets="argentina,brazil", recreate_on_end=True)
    await joined(player, game_id)
    print(await admin.call(375, game_id=game_id))
    print(res_codes(await player.drain()))
    print(await admin.call(387, game_id=game_id))
