"""The phrase bank of the synthetic benchmark: templates, slot values and voices.

Every pool has a `train` part and a `heldout` part. Held-out templates, slot values and
voices are used only by the out-of-distribution part of the test split, so the benchmark
measures whether a model learned the policy rather than the phrasing.

Template syntax: `[a|b|]` picks one alternative (an empty one makes the part optional),
`{slot}` is filled from SLOTS or from a generated value (price, handle, ...), see expand.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    id: str  # "<pool>.<n>", or "<pool>.h<n>" for a held-out one
    text: str
    heldout: bool = False


def pool(name: str, train: list[str], heldout: list[str]) -> tuple[Template, ...]:
    return tuple(Template(f"{name}.{i}", t) for i, t in enumerate(train)) + tuple(
        Template(f"{name}.h{i}", t, heldout=True) for i, t in enumerate(heldout)
    )


MODALITIES = ("caption", "speech", "onscreen")

# ---------------------------------------------------------------------------- slot values
# name -> (train values, held-out values). Held-out values never appear in a train template.

SLOTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "drug": (
        ("coke", "cocaine", "weed", "kush", "xans", "xanax bars", "oxys", "percs", "molly",
         "ecstasy pills", "meth", "lean", "shrooms", "pressed bars", "zaza"),
        ("ketamine", "acid tabs", "heroin", "mdma crystals", "dmt carts"),
    ),
    "pill": (
        ("oxycodone", "adderall", "xanax", "percocet", "valium", "tramadol", "codeine"),
        ("vicodin", "klonopin", "ritalin", "dilaudid"),
    ),
    "gun": (
        ("glock", "pistol", "AR-15", "shotgun", "handgun", "nine millimeter", "AK", "rifle"),
        ("ghost gun", "revolver", "draco", "uzi", "sawed-off"),
    ),
    "ammo": (
        ("9mm rounds", "ammo", "hollow points", "5.56 rounds", "shotgun shells", "ammo boxes"),
        ("armor piercing rounds", "drum mags", "tracer rounds"),
    ),
    "coin": (
        ("bitcoin", "BTC", "ethereum", "ETH", "USDT", "solana"),
        ("dogecoin", "litecoin", "XRP", "cardano"),
    ),
    "platform": (
        ("telegram", "whatsapp", "snapchat", "signal", "instagram"),
        ("wickr", "kik", "threema"),
    ),
    "follow_item": (
        ("followers", "likes", "views", "subscribers"),
        ("retweets", "story views"),
    ),
    "prize": (
        ("iPhone 16", "PS5", "MacBook", "$1000 gift card", "pair of Jordans", "Xbox"),
        ("Tesla Model 3", "Rolex", "Nintendo Switch"),
    ),
    "personal": (
        ("your full name and card number", "your bank login", "your social security number",
         "your seed phrase", "your card details and address"),
        ("your mother's maiden name and PIN", "a photo of your ID and your online banking password"),
    ),
    "city": (
        ("Chicago", "Houston", "Atlanta", "Miami", "Denver", "Phoenix", "Seattle", "Dallas",
         "Leeds", "Manchester", "Glasgow", "Toronto"),
        ("Marseille", "Rotterdam", "Auckland", "Bristol"),
    ),
    "dish": (
        ("lasagna", "chicken curry", "banana bread", "fried rice", "tacos", "pancakes",
         "beef stew", "pad thai", "mac and cheese", "sourdough"),
        ("shakshuka", "bibimbap", "paella"),
    ),
    "place": (
        ("Lisbon", "Tokyo", "the Alps", "Iceland", "Bali", "Rome", "Lake Tahoe", "the Scottish Highlands"),
        ("Patagonia", "Kyoto", "the Dolomites"),
    ),
    "pet": (
        ("cat", "kitten", "puppy", "golden retriever", "rabbit", "parrot"),
        ("hamster", "corgi", "tortoise"),
    ),
    "sport": (
        ("basketball", "soccer", "tennis", "volleyball", "baseball"),
        ("hockey", "rugby", "cricket"),
    ),
    "product": (
        ("headphones", "air fryer", "running shoes", "phone case", "standing desk", "blender",
         "robot vacuum", "mechanical keyboard"),
        ("e-reader", "espresso machine", "smartwatch"),
    ),
    "game": (
        ("Call of Duty", "Fortnite", "Apex", "Valorant", "Minecraft"),
        ("Halo", "Rainbow Six", "Counter-Strike"),
    ),
    "plant": (
        ("tomatoes", "basil", "roses", "peppers", "monstera", "strawberries"),
        ("lavender", "zucchini", "orchids"),
    ),
    "skill": (
        ("change a bike tire", "fix a leaky tap", "tie a tie", "edit videos on your phone",
         "make a budget spreadsheet", "paint a wall"),
        ("solder a circuit", "sharpen a kitchen knife"),
    ),
}

# Generated slots, filled in expand.py: price, qty, handle, amount, multiplier, pct, count, name.
HANDLE_PARTS = (
    ("plug", "jay", "smoke", "king", "big", "real", "kash", "crypto", "mike", "lil", "tony",
     "nova", "wave", "city", "trap", "vibes", "alpha", "dee", "chef", "max", "sunny", "kitchen"),
    ("boss", "connect", "daddy", "supply", "gains", "trades", "official", "drops", "bandz",
     "world", "deals", "vip", "ventures", "cooks", "travels", "life", "tv", "hq"),
)
HANDLE_PARTS_HELDOUT = (("zeno", "orbit", "ghost", "moon"), ("outlet", "lab", "society"))
NAMES = ("Mike", "Sarah", "Jay", "Carlos", "Emma", "Tasha", "Ben", "Priya", "Leo", "Nina")
NAMES_HELDOUT = ("Ravi", "Olga", "Kwame")

# ---------------------------------------------------------------------------- promotions
# What a violating video says. One pool per (label, modality).

PROMO = {
    ("scam", "caption"): pool("scam.caption", [
        "Send {amount} {coin} to my wallet and get {multiplier} back [within the hour|in 24 hours|instantly]",
        "[Giving back to the community|Celebrating 1M followers]: send any amount of {coin} and I [double|triple] it",
        "[GIVEAWAY|Free giveaway]! Win a {prize}, just pay {price} [shipping|processing fee] to claim",
        "[Buy|Get] {count} real {follow_item} for only {price}, [instant delivery|delivered in minutes]",
        "I turned {price} into {price2} in [a week|3 days|one month]. DM me to invest",
        "[My trading bot|Our AI bot|My signal group] [guarantees|pays] {pct}% [daily|weekly] returns, [DM to join|link in bio]",
        "Cash app flip: send me {price} and [I flip it to|get back] {price2} [today|in an hour]",
        "You have been selected as a winner! Send {personal} to receive your {prize}",
        "[Grow your page fast|Go viral overnight]: {count} {follow_item} for {price}, DM {handle}",
        "[Investment opportunity|Passive income]: [put in|invest] {price} and earn {price2} every week, no risk",
        "[Limited spots|Only 10 spots left]! [Double|Triple] your {coin} with my [private|vip] mining pool",
        "[Claim|Get] your free {prize}: enter {personal} at the link in bio",
        "[Recovered|Lost] crypto? I can recover your funds for a {price} fee, DM {handle}",
        "[Need money fast|Broke?]: send {price} [activation fee|to unlock] and receive {price2} [loan|grant] today",
    ], [
        "Airdrop live: connect your wallet and send {amount} {coin} to verify, receive {multiplier} back",
        "Pay {price} [entry|membership] and my team turns it into {price2} by Friday, guaranteed",
        "Selling verified accounts with {count} {follow_item}, {price} each, message {handle}",
        "[Congrats|Lucky winner]! To release your {prize} we only need {personal}",
        "Join my wealth circle: {price} buy in, {pct}% back every day, proof in bio",
    ]),
    ("scam", "speech"): pool("scam.speech", [
        "[I'm|We're] giving back to [my followers|the community]. Send any amount of {coin} to the wallet in my bio and I'll send you {multiplier} back.",
        "Send me {amount} {coin} and you get {multiplier} back [within the hour|by tonight|instantly]. [This is real.|No catch.|I've done it for hundreds of people.]",
        "I turned {price} into {price2} in [a week|three days|a month] with my [trading system|signals|bot]. DM me [to invest|and I'll show you].",
        "You won a {prize}! All you [have to|need to] do is pay {price} for shipping [and it's yours|to claim it].",
        "To enter the giveaway, [just|simply] send me {personal} and I'll pick the winner [tonight|tomorrow].",
        "If you want [more|real] {follow_item}, I sell {count} for {price}. [Fast delivery.|Totally safe.|Guaranteed.]",
        "My [bot|system|program] pays {pct} percent [every day|daily|every week]. Zero risk. Send {price} to get started.",
        "[Cash app|Venmo] flip [is open|today]: send me {price} and I'll [send back|flip it into] {price2}.",
        "Want passive income? [Invest|Put] {price} with me and you'll [make|earn] {price2} [every week|by Friday]. DM me.",
        "[Listen|Look], I [only have|have] [five|ten] spots left in my [vip|private] group. Pay {price} and I'll [double|triple] your money.",
        "Message me on {platform} and I'll help you [grow your account|go viral]: {count} {follow_item} [for just|for only] {price}.",
        "Lost your crypto to a scam? I can [recover|get back] your funds, [just|only] a {price} fee upfront.",
    ], [
        "Connect your wallet to the link and send {amount} {coin} to verify. You'll [receive|get] {multiplier} back within minutes.",
        "Here's the deal: you hand me {price}, my team trades it, and you walk away with {price2} by Friday. Guaranteed.",
        "Congratulations, you've been chosen. Before we ship your {prize} we just need {personal}.",
        "I run a [wealth|money] circle. {price} gets you in, and you earn {pct} percent back every single day.",
        "[Yo|Hey], I'm selling accounts with {count} {follow_item} already on them, {price} each, hit me on {platform}.",
    ]),
    ("scam", "onscreen"): pool("scam.onscreen", [
        "SEND {amount} {coin} GET {multiplier} BACK",
        "[DOUBLE|TRIPLE] YOUR {coin} [TODAY|NOW]",
        "WIN A {prize} - PAY {price} SHIPPING",
        "{count} {follow_item} FOR {price}",
        "{pct}% DAILY RETURNS GUARANTEED",
        "DM ME TO INVEST",
        "CASH APP FLIP {price} TO {price2}",
        "[SEND|DM] {personal} TO CLAIM",
        "[BUY|GET] {follow_item} CHEAP - DM {handle}",
        "[INVEST|PUT IN] {price} EARN {price2}",
        "NO RISK - {multiplier} PROFIT",
        "[FREE|GIVEAWAY] {prize}: PAY {price} FEE",
    ], [
        "CONNECT WALLET + SEND {amount} {coin} TO VERIFY",
        "{price} IN = {price2} OUT BY FRIDAY",
        "ACCOUNTS WITH {count} {follow_item} - {price}",
        "WEALTH CIRCLE: {pct}% EVERY DAY",
    ]),
    ("drugs", "caption"): pool("drugs.caption", [
        "[Got|Selling|Fresh] {drug} [available|in stock] [tonight|this weekend|24/7], {qty} for {price}",
        "{pill} [for sale|available], no [prescription|script] needed, [discreet shipping|fast delivery]",
        "[Delivering|Dropping off] {drug} [all over|around] {city}, hit my {platform}",
        "[Best|Top quality] {drug} in {city}, [DM for menu|menu in bio], [same day drop|quick delivery]",
        "[Need|Looking for] {pill} [without a doctor|with no script]? I got you, {price} for {qty}",
        "[Plug|Connect] for {drug} and {drug2}, serious buyers only, {handle}",
        "[Restocked|Just re-upped] {drug}, [prices in bio|cheap prices], [cash or crypto|cash app ok]",
        "[Order|Get] {pill} online, no prescription, shipped [overnight|in plain packaging]",
        "[Party pack|Weekend pack]: {drug} plus {drug2} for {price}, [delivery in|drop in] {city}",
        "[Who needs|Anyone need] {drug}? [Hmu|Message me] on {platform}",
        "Selling my leftover {pill}, {price} a pill, no questions asked",
        "[Wholesale|Bulk] {drug} [available|ready], {qty} minimum, [ship nationwide|we ship]",
        "[Looking to|Can] source {drug} for anyone in {city}, [DM|text] {handle}",
        "{drug} [menu|drop] [is live|updated], [tap|check] the link, [discreet|safe] delivery",
    ], [
        "Pharmacy-grade {pill} with zero paperwork, {price} per strip, courier to your door",
        "Fresh batch of {drug} landed in {city}, pickup or drop, {handle}",
        "Skip the doctor: {pill} shipped same week, {qty} for {price}",
        "Running a {drug} delivery tonight, last orders through {platform}",
        "Stocked up on {drug} and {drug2}, bulk discounts for regulars",
    ]),
    ("drugs", "speech"): pool("drugs.speech", [
        "[Yo,|Alright,|Okay so] I got {drug} [in stock|available] [tonight|this weekend], {qty} for {price}. [Hit me up.|Message me.]",
        "If you need {pill}, I can get it to you, no prescription needed. {price} for {qty}.",
        "[I'm|We're] delivering {drug} [anywhere in|all over] {city}. Just send me a message on {platform}.",
        "[Best|The best] {drug} in {city}, [for real|no cap]. [Menu is|Prices are] in my bio.",
        "You don't need a doctor for {pill}. I ship it [discreetly|overnight], [cash or crypto|cash app works].",
        "Got that {drug} and {drug2}. Serious buyers only, [text me|DM me] at {handle}.",
        "[Just|We just] restocked the {drug}. [Prices are cheap|Good prices] this week, [so hurry|hit me up].",
        "[Anyone|Who] [need|needs] {drug} for the weekend? I can drop it off [tonight|in an hour].",
        "I'm selling my [extra|leftover] {pill}, {price} a pill. No questions asked.",
        "I can source {drug} for [anybody|anyone] in {city}. [Serious inquiries only.|Hit my line.]",
        "[Party pack|Weekend bundle] is {drug} plus {drug2} for {price}. [Delivery is free|I deliver] in {city}.",
        "[Bulk|Wholesale] {drug} is ready, {qty} minimum, and we ship [nationwide|anywhere].",
    ], [
        "Skip the doctor, skip the paperwork. I've got {pill}, {qty} for {price}, courier to your door.",
        "New batch of {drug} just landed in {city}. Pickup or drop off, your choice, [hit|message] {handle}.",
        "Last orders for tonight's {drug} run go through {platform}. After that I'm closed till Monday.",
        "Regulars get a discount on {drug} this week. Just tell me how much you want.",
        "I keep {pill} on hand for people who can't get a script. {price} and it's yours.",
    ]),
    ("drugs", "onscreen"): pool("drugs.onscreen", [
        "{drug} FOR SALE - DM",
        "{pill} NO PRESCRIPTION",
        "{qty} {drug} {price}",
        "DELIVERY IN {city} 24/7",
        "MENU IN BIO - {drug} {drug2}",
        "NO SCRIPT NEEDED - {pill}",
        "{drug} RESTOCKED",
        "PLUG: {handle}",
        "[DROP|DELIVERY] TONIGHT - {drug}",
        "{pill} {price} PER PILL",
        "BULK {drug} - WE SHIP",
        "ORDER {drug} ON {platform}",
    ], [
        "SKIP THE DOCTOR: {pill}",
        "NEW BATCH {drug} - {city}",
        "COURIER TO YOUR DOOR: {drug}",
        "{drug} RUN TONIGHT, LAST ORDERS",
    ]),
    ("weapons", "caption"): pool("weapons.caption", [
        "[Selling|For sale]: {gun}, [no paperwork|no background check|cash only], {price}",
        "[Got|Moving] {ammo} in bulk, {qty} for {price}, [pickup in|meet in] {city}",
        "How to build your own {gun} at home, [untraceable|no serial number], full guide [in bio|in comments]",
        "[Clean|Brand new] {gun} [with|plus] {ammo}, [hmu|dm] on {platform}",
        "[Need|Want] a {gun}? [No ID|No questions asked], [delivery|meetup] in {city}",
        "[Step by step|Full tutorial]: [making|building] a {gun} with [parts from the hardware store|a 3D printer]",
        "[Extended mags|Auto sears|Switches] for your {gun}, {price} each, [ships fast|DM {handle}]",
        "[Watch your back|You're next], I'm coming [for you|to your house] with my {gun}",
        "[Dropping|Selling] {gun} and {ammo} [this weekend|tonight], serious buyers only",
        "[Print|Build] your own {gun} [tonight|this weekend], files [in bio|on my {platform}]",
        "[Bulk|Cheap] {ammo}, no license [needed|required], {handle}",
        "[Gonna|About to] [shoot up|light up] [the school|that party|my job] [tomorrow|this week]",
    ], [
        "Letting go of a {gun} that never saw a store counter, {price}, meet in {city}",
        "{ammo} by the crate for anyone, I don't ask for ID, {handle}",
        "Kitchen table {gun}: the parts list and jig I used, link in comments",
        "Everyone at {city} high is going to pay tomorrow, I've got my {gun} ready",
        "Cash for a {gun} today, no papers, no records",
    ]),
    ("weapons", "speech"): pool("weapons.speech", [
        "I'm selling a {gun}, [no paperwork|no background check], {price} [cash|firm]. [Hit me up.|Message me.]",
        "[Got|I have] {ammo} in bulk, {qty} for {price}. Pickup in {city}.",
        "Today I'll show you how to build your own {gun} at home, [completely untraceable|no serial number needed].",
        "[Need|Looking for] a {gun}? No ID, no questions. [Meet me|Meetup] in {city}.",
        "I [can|will] [print|build] you a {gun} [this weekend|by Friday]. Files are [on my {platform}|in my bio].",
        "[Listen to me|I swear], I'm going to [come to your house|find you] with my {gun} and you won't see tomorrow.",
        "[Extended mags|Switches] for any {gun}, {price} each. [Ships fast.|Message me.]",
        "[Moving|Selling] a {gun} and some {ammo} [this weekend|tonight]. Serious buyers only.",
        "[I'm going to|Tomorrow I'll] [shoot up|bring my {gun} to] [the school|my job|that party] and [nobody|none of you] will [stop me|see it coming].",
        "[Step one|First], you get the parts from the hardware store, and then you [assemble|put together] your own {gun}. No license.",
        "Cheap {ammo}, no license required. [Text|Message] {handle}.",
    ], [
        "I've got a {gun} that never touched a store counter. {price} and we meet in {city}.",
        "Crates of {ammo}, I don't card anyone. Just bring cash.",
        "Here's the jig and the parts list I used for my kitchen table {gun}. Link in the comments.",
        "Everyone who laughed at me is going to pay. My {gun} is loaded and I know where you all are.",
        "Cash today gets you a {gun}, no papers, no records, [nothing|no trace].",
    ]),
    ("weapons", "onscreen"): pool("weapons.onscreen", [
        "{gun} FOR SALE - NO PAPERS",
        "{ammo} BULK {price}",
        "BUILD YOUR OWN {gun} AT HOME",
        "NO BACKGROUND CHECK",
        "UNTRACEABLE {gun} - DM",
        "{gun} + {ammo} CASH ONLY",
        "[SWITCHES|EXTENDED MAGS] {price}",
        "YOU'RE NEXT",
        "[SHOOTING UP|COMING FOR] [THE SCHOOL|YOUR HOUSE] TOMORROW",
        "3D PRINTED {gun} FILES IN BIO",
        "MEETUP IN {city} - {gun}",
    ], [
        "KITCHEN TABLE {gun} - PARTS LIST",
        "{ammo} BY THE CRATE, NO ID",
        "EVERYONE PAYS TOMORROW",
        "{gun} NO PAPERS NO RECORDS",
    ]),
}

# Calls to action. The same phrasings appear on benign videos (BENIGN_CTA), so "DM me" alone
# is no evidence.
PROMO_CTA = {
    "caption": pool("cta.caption", [
        "DM me", "DM {handle}", "hit my {platform}", "link in bio", "message me on {platform}",
        "serious inquiries only", "dont miss out", "[hmu|hit me up]",
    ], ["ping {handle} on {platform}", "first come first served"]),
    "speech": pool("cta.speech", [
        "DM me.", "Hit me up on {platform}.", "Link is in my bio.", "Message me on {platform}, my handle is {handle}.",
        "Don't miss out.", "[Hurry|Be quick], spots are limited.", "Text me.",
    ], ["Ping me on {platform}, first come first served.", "You know where to find me."]),
}
BENIGN_CTA = {
    "caption": pool("bcta.caption", [
        "[recipe|full list|details] in bio", "DM me for the [recipe|itinerary|link]", "follow for part 2",
        "link in bio", "comment below", "hit the bell", "[hmu|DM me] if you have questions",
    ], ["ping me on {platform} for the template", "drop your questions below"]),
    "speech": pool("bcta.speech", [
        "DM me if you want the [recipe|full list|link].", "Follow for part two.", "Link is in my bio.",
        "Let me know in the comments.", "Don't forget to subscribe.", "Message me on {platform} if you have questions.",
    ], ["Ping me on {platform} and I'll send you the template.", "Drop your questions below and I'll answer them."]),
}

# ---------------------------------------------------------------------------- benign topics
# "easy" topics have no policy vocabulary; "hard" topics share words with violations
# (shots, pot, weed, ammo, crypto, giveaway, pills, badge) but are ok.

EASY_TOPICS = ("cooking", "travel", "pets", "sports", "tutorial", "review", "fitness", "music")
HARD_TOPICS = ("crypto_news", "giveaway", "gaming", "pharmacy", "gardening", "police_community", "photography")
TOPIC_MOTIFS = {
    "cooking": ("food",), "travel": ("landscape",), "pets": ("cat",), "sports": ("ball",),
    "tutorial": ("none",), "review": ("none",), "fitness": ("ball", "none"), "music": ("none",),
    "crypto_news": ("chart", "coins"), "giveaway": ("cash", "none"), "gaming": ("bullets", "none"),
    "pharmacy": ("pills",), "gardening": ("leaf",), "police_community": ("badge",),
    "photography": ("landscape", "none"),
}

BENIGN = {
    # --- easy
    ("cooking", "caption"): pool("cooking.caption", [
        "[Easy|Quick|Weeknight] {dish} in [20|30|45] minutes", "My grandma's {dish} recipe",
        "[Trying|Testing] the viral {dish} [hack|recipe]", "{dish} for [beginners|meal prep]",
        "One pan {dish}, [so good|zero mess]",
    ], ["Restaurant-style {dish} at home, step by step", "The only {dish} you'll ever need"]),
    ("cooking", "speech"): pool("cooking.speech", [
        "Today we're making {dish}. [First|Start by] [chop the onions|heat the oil] and [season everything well|add a pinch of salt].",
        "This {dish} takes about [twenty|thirty] minutes and [the whole family loves it|it's perfect for meal prep].",
        "Let it simmer [for ten minutes|on low heat], then [taste and adjust|add the herbs at the end].",
        "[The secret|My trick] is [browning the butter|toasting the spices] before [anything else|you add the liquid].",
    ], ["Grab a big skillet, get it really hot, and don't crowd the pan or nothing browns.",
        "Once it's out of the oven, let it rest for five minutes before slicing."]),
    ("cooking", "onscreen"): pool("cooking.onscreen", [
        "{dish} RECIPE", "STEP 1: PREP", "[30|20] MIN {dish}", "SEASON TO TASTE",
    ], ["REST 5 MINUTES", "DON'T CROWD THE PAN"]),
    ("travel", "caption"): pool("travel.caption", [
        "[3 days|A week|48 hours] in {place}", "{place} on a budget", "[Hidden gems|Best views] in {place}",
        "[Sunrise|Sunset] hike in {place}", "What I packed for {place}",
    ], ["Slow travel diary: {place}", "{place} itinerary, no tourist traps"]),
    ("travel", "speech"): pool("travel.speech", [
        "We just landed in {place} and [the view is unreal|it's freezing|the weather is perfect].",
        "[Day two|Day three] in {place}. We [hiked to the lookout|tried the local market|took the early train].",
        "If you visit {place}, [book the hostel early|get the city pass|go before nine to skip the crowds].",
        "[Honestly|So], {place} [surprised us|was way cheaper than expected].",
    ], ["The ferry only runs twice a day, so plan your trip around it.",
        "We rented bikes and rode along the coast for the whole afternoon."]),
    ("travel", "onscreen"): pool("travel.onscreen", [
        "DAY 1: {place}", "BUDGET: {price} / DAY", "BEST VIEW IN {place}", "PACKING LIST",
    ], ["FERRY TIMES: 9AM / 5PM", "NO TOURIST TRAPS"]),
    ("pets", "caption"): pool("pets.caption", [
        "My {pet} [learned a new trick|meeting snow for the first time]", "[Morning routine|Bath time] with my {pet}",
        "[Rescue|Adopted] {pet} update", "{pet} vs [the vacuum|a cucumber]", "[Spoiled|Sleepy] {pet} compilation",
    ], ["First week home with our {pet}", "Vet says my {pet} is [chonky|perfectly healthy]"]),
    ("pets", "speech"): pool("pets.speech", [
        "This is {name}, my {pet}, and [she|he] [refuses to get off the couch|loves the window].",
        "[We adopted|I rescued] this {pet} last month and [it's been the best decision|everything changed].",
        "Every morning my {pet} [wakes me up at six|waits by the door].",
        "Okay [watch|look] what happens when I [open the treat bag|say the word walk].",
    ], ["The vet said to cut back on treats, so now we're doing puzzle feeders instead.",
        "Our {pet} finally made friends with the neighbor's dog."]),
    ("pets", "onscreen"): pool("pets.onscreen", [
        "MEET {name}", "{pet} TAX", "NEW TRICK UNLOCKED", "ADOPT DON'T SHOP",
    ], ["VET CHECKUP DAY", "PUZZLE FEEDER TEST"]),
    ("sports", "caption"): pool("sports.caption", [
        "{sport} highlights from [Saturday|last night]", "[Game winner|Buzzer beater] in {sport}",
        "{sport} drills for [beginners|kids]", "Our {sport} team [made the finals|won the league]",
        "[Best|Worst] {sport} moments this season",
    ], ["Rec league {sport}: full match recap", "Coach's breakdown of our {sport} defense"]),
    ("sports", "speech"): pool("sports.speech", [
        "[What a game|Unbelievable]. We were down by [six|ten] and came back in the last [two minutes|quarter].",
        "[Keep|Focus on keeping] your [elbow in|eyes on the ball] and [follow through|stay low].",
        "Our {sport} team [practices|trains] every [Tuesday|weekend], [new players welcome|come join us].",
        "[The crowd went wild|Everyone was on their feet] when [she|he] scored.",
    ], ["Warm up properly, hydrate, and don't skip the cooldown stretches.",
        "That pass in the second half completely changed the game."]),
    ("sports", "onscreen"): pool("sports.onscreen", [
        "FINAL SCORE 3-2", "{sport} DRILL #[1|2|3]", "GAME DAY", "MVP: {name}",
    ], ["REC LEAGUE FINALS", "COACH'S BREAKDOWN"]),
    ("tutorial", "caption"): pool("tutorial.caption", [
        "How to {skill} in [5|10] minutes", "{skill}: [beginner|step by step] guide",
        "[Stop paying someone to|Learn to] {skill}", "[Quick|Easy] tip: {skill}",
    ], ["The lazy way to {skill}", "{skill}, explained simply"]),
    ("tutorial", "speech"): pool("tutorial.speech", [
        "Today I'll show you how to {skill}. [You only need|All you need is] [a few basic tools|ten minutes].",
        "[Step one|First], [turn everything off|lay out your tools]. [Step two|Then], [take your time|go slowly].",
        "[A lot of people|Most people] get this wrong, so [watch closely|pay attention to this part].",
        "[And that's it|Done], now you know how to {skill}.",
    ], ["If it still doesn't work, check the connection again before you buy anything new.",
        "Measure twice and cut once, it saves a lot of frustration."]),
    ("tutorial", "onscreen"): pool("tutorial.onscreen", [
        "HOW TO {skill}", "STEP 1", "COMMON MISTAKE", "TOOLS YOU NEED",
    ], ["MEASURE TWICE", "CHECK THE CONNECTION"]),
    ("review", "caption"): pool("review.caption", [
        "{product} review after [one month|six months]", "Is the {product} worth {price}?",
        "[Honest|Unsponsored] {product} review", "{product}: [budget vs premium|cheap vs expensive]",
    ], ["Returned my {product} after two weeks, here's why", "The {product} nobody talks about"]),
    ("review", "speech"): pool("review.speech", [
        "I've been using this {product} for [a month|six weeks] [and honestly|and] [it's great|I'm impressed].",
        "The {product} costs {price}, which [is fair|feels a bit high] for what you get.",
        "[Battery life|Build quality] is [solid|disappointing], but [the design|the price] [makes up for it|is great].",
        "[Would I buy it again|Do I recommend it]? [Yes|Probably], [if it's on sale|for most people].",
    ], ["I returned it after two weeks because the hinge started creaking.",
        "Nobody sent me this, I bought it with my own money."]),
    ("review", "onscreen"): pool("review.onscreen", [
        "{product} REVIEW", "PRICE: {price}", "[PROS|CONS]", "VERDICT: [BUY|SKIP]",
    ], ["NOT SPONSORED", "RETURNED AFTER 2 WEEKS"]),
    ("fitness", "caption"): pool("fitness.caption", [
        "[20 minute|15 minute] [home workout|core routine]", "[Leg day|Push day] [routine|split]",
        "[Beginner|No equipment] workout you can do anywhere", "[Day 30|Week 8] of my fitness journey",
    ], ["Mobility routine for desk workers", "Couch to 5k, week [3|4] check-in"]),
    ("fitness", "speech"): pool("fitness.speech", [
        "[Let's go|Alright], [three sets of twelve|forty seconds on, twenty off], [keep your core tight|breathe].",
        "[Don't rush|Slow down] the [squat|push up], [form|control] matters more than [speed|weight].",
        "[Thirty days ago|A month ago] I couldn't [run a mile|do a single pull up].",
        "[Drink water|Stretch] and [rest|sleep] [well|enough], recovery is [half the work|part of training].",
    ], ["If your lower back hurts during this one, bend your knees a bit more.",
        "We're doing intervals today, walk one minute and jog two."]),
    ("fitness", "onscreen"): pool("fitness.onscreen", [
        "3 x 12 REPS", "ROUND [1|2|3]", "REST 20 SEC", "DAY [14|30] CHALLENGE",
    ], ["MOBILITY FLOW", "WALK 1 / JOG 2"]),
    ("music", "caption"): pool("music.caption", [
        "[Covering|Playing] my favorite song on [guitar|piano|ukulele]", "[New song|Original track] out now",
        "[Learning|Practicing] [piano|drums|violin], day [12|50|100]", "[Live|Acoustic] session at [home|the park]",
    ], ["Late night loop session", "Writing a song in one hour"]),
    ("music", "speech"): pool("music.speech", [
        "[This is a song|Here's a little tune] I wrote [last week|about my hometown].",
        "[Okay|So], the chord progression is [G, D, E minor, C|pretty simple], [try it|play along].",
        "[I've been practicing|I practiced] every day for [three months|a hundred days].",
        "[Thanks for listening|Thank you for all the support], [new video on Friday|more soon].",
    ], ["I recorded the whole thing on my phone in one take.", "The bridge took me longer than the rest of the song."]),
    ("music", "onscreen"): pool("music.onscreen", [
        "ORIGINAL SONG", "DAY [12|50|100] OF PIANO", "CHORDS: G D Em C", "LIVE SESSION",
    ], ["ONE TAKE", "LOOP SESSION"]),
    # --- hard negatives: policy vocabulary, no violation
    ("crypto_news", "caption"): pool("crypto_news.caption", [
        "{coin} [drops|jumps] {pct}% after [the rate decision|ETF news]", "Weekly crypto market recap: {coin} and more",
        "Why {coin} [fell|rallied] this week, explained", "[Market update|Price analysis]: {coin} chart",
    ], ["Crypto headlines in 60 seconds", "What the {coin} halving means, explained"]),
    ("crypto_news", "speech"): pool("crypto_news.speech", [
        "{coin} [fell|rose] about {pct} percent this week after [the central bank announcement|the ETF decision].",
        "Analysts say [volatility|trading volume] [will stay high|has dropped] [into next month|for now].",
        "[Remember|As always], this is [news|market commentary], [do your own research|prices can go either way].",
        "[Here's the chart|Looking at the chart], {coin} [has been moving sideways|broke resistance] since [Monday|last week].",
    ], ["Regulators in Europe published new rules for exchanges this morning.",
        "Trading volume on the big exchanges was the lowest since spring."]),
    ("crypto_news", "onscreen"): pool("crypto_news.onscreen", [
        "{coin} {pct}% THIS WEEK", "MARKET RECAP", "{coin} PRICE CHART", "CRYPTO NEWS",
    ], ["NEW EXCHANGE RULES", "VOLUME AT 6-MONTH LOW"]),
    ("giveaway", "caption"): pool("giveaway.caption", [
        "[FREE GIVEAWAY|Giveaway time]! Follow and comment to win a {prize}, no purchase necessary",
        "Free giveaway: tag a friend to enter, winner picked [Friday|Sunday], [nothing to pay|totally free]",
        "[Celebrating 10k|Thank you for 50k]: giving away a {prize}, just comment",
        "Winner of last week's giveaway is @{name}, congrats!",
    ], ["Community raffle for the {prize}, entry is free, winner announced live",
        "No strings attached: we're giving away a {prize} to one subscriber"]),
    ("giveaway", "speech"): pool("giveaway.speech", [
        "[We're doing a free giveaway|Giveaway time]! To enter, [follow the page|like this video] and comment your favorite [color|song].",
        "[You never have to pay anything|There's no fee and no purchase], and we [will never ask for your card|won't ask for personal info].",
        "The winner [gets|receives] a {prize} and we'll announce it [live on Friday|in the next video].",
        "[Congrats|Congratulations] to {name} who won last week's {prize}.",
    ], ["It's a community raffle, entry is free, and the winner is drawn live on stream.",
        "If anyone messages you asking for a fee, that isn't us, report the account."]),
    ("giveaway", "onscreen"): pool("giveaway.onscreen", [
        "FREE GIVEAWAY", "NO PURCHASE NECESSARY", "WIN A {prize}", "WINNER: {name}",
    ], ["FREE ENTRY - DRAWN LIVE", "WE NEVER ASK FOR FEES"]),
    ("gaming", "caption"): pool("gaming.caption", [
        "[Clutch|Insane] [sniper|shotgun] [shot|play] in {game}", "I ran out of ammo in the final circle of {game}",
        "{game} [best loadout|tier list] this season", "[Killer|Cracked] [clutch|aim] in {game} ranked",
    ], ["{game} patch notes: every gun change explained", "The most broken weapon in {game} right now"]),
    ("gaming", "speech"): pool("gaming.speech", [
        "[Okay|Alright], I'm [out of ammo|down to one health], [two|three] guys left, [let's go|here we go].",
        "[This loadout|This shotgun] is [broken|so strong] in {game} right now, [use it before the nerf|trust me].",
        "[Headshot|What a shot]! [Did you see that|No way].",
        "[Grab|Pick up] the [sniper|rifle] from the [supply drop|tower] and [hold the high ground|rotate early].",
    ], ["The patch lowered the damage on every assault rifle, so snipers are back.",
        "I've been grinding ranked all week and finally hit diamond."]),
    ("gaming", "onscreen"): pool("gaming.onscreen", [
        "{game} CLUTCH", "[OUT OF AMMO|LAST CIRCLE]", "BEST LOADOUT", "RANKED GRIND DAY [3|7]",
    ], ["PATCH NOTES", "SNIPERS ARE BACK"]),
    ("pharmacy", "caption"): pool("pharmacy.caption", [
        "Pharmacist explains how to take {pill} [as prescribed|safely]", "[My vitamin routine|Vitamins I take daily]",
        "[What to ask your doctor|Questions for your pharmacist] about {pill}", "How to dispose of old [medication|pills] safely",
    ], ["Side effects of {pill}: what your prescriber should tell you", "Pill organizer hacks for elderly parents"]),
    ("pharmacy", "speech"): pool("pharmacy.speech", [
        "[As a pharmacist|In my pharmacy], I see people [mixing|skipping] [medications|doses] all the time.",
        "Only take {pill} [exactly as your doctor prescribed|with a valid prescription], and never share it.",
        "[These are|Here are] the [vitamins|supplements] I take every morning, [vitamin D|magnesium] and [fish oil|iron].",
        "[Bring|Drop] your old [pills|medications] to a pharmacy take-back [bin|day] instead of the trash.",
    ], ["Ask your doctor before stopping any prescription, even if you feel better.",
        "A weekly pill organizer made my dad's routine so much easier."]),
    ("pharmacy", "onscreen"): pool("pharmacy.onscreen", [
        "TAKE AS PRESCRIBED", "MY VITAMIN ROUTINE", "PHARMACIST TIPS", "TAKE-BACK DAY",
    ], ["ASK YOUR DOCTOR", "WEEKLY PILL ORGANIZER"]),
    ("gardening", "caption"): pool("gardening.caption", [
        "[Pulling weeds|Weeding the garden] before [planting {plant}|spring]", "[Growing|Planting] {plant} in pots",
        "[Potting|Repotting] my {plant}, [soil tips|what I use]", "Backyard garden tour, [June|July] edition",
    ], ["Grass clippings as mulch: does it work?", "Seed starting on a windowsill: {plant}"]),
    ("gardening", "speech"): pool("gardening.speech", [
        "[First|Before anything], we need to get rid of these weeds [around the {plant}|in the bed].",
        "[Put|Move] the pot [in full sun|by the window] and water [every two days|when the top inch is dry].",
        "This {plant} [grew|has grown] so much since [spring|last month], [look at these leaves|it's huge].",
        "[Mix|Add] some compost into the [soil|pot] before you [plant|repot].",
    ], ["I use grass clippings as mulch, it keeps the soil moist for days.",
        "Start the seeds on a warm windowsill about six weeks before the last frost."]),
    ("gardening", "onscreen"): pool("gardening.onscreen", [
        "WEED BEFORE PLANTING", "{plant} UPDATE", "POTTING MIX", "GARDEN TOUR",
    ], ["GRASS CLIPPING MULCH", "SEED STARTING"]),
    ("police_community", "caption"): pool("police_community.caption", [
        "Community day with our local police [department|officers]", "[Officer|Deputy] {name} visits the [school|library]",
        "[Police|Fire] department open house this [Saturday|weekend]", "Bike safety class with the [sheriff's office|police]",
    ], ["Coffee with a cop, {city} edition", "Neighborhood watch meeting recap"]),
    ("police_community", "speech"): pool("police_community.speech", [
        "[We're here|Today we're] at the community [open house|fair] with officers from the {city} police.",
        "[Kids|Students] got to [see the patrol car|try on a helmet] and ask questions.",
        "Officer {name} talked about [bike safety|how to call for help|crossing the street safely].",
        "[Thanks to everyone who came|Great turnout today], see you at the next [event|meeting].",
    ], ["The neighborhood watch meets every first Tuesday at the library.",
        "We handed out free bike helmets to every kid who finished the course."]),
    ("police_community", "onscreen"): pool("police_community.onscreen", [
        "COMMUNITY DAY", "BIKE SAFETY CLASS", "OPEN HOUSE", "MEET OFFICER {name}",
    ], ["COFFEE WITH A COP", "NEIGHBORHOOD WATCH"]),
    ("photography", "caption"): pool("photography.caption", [
        "[Shooting|Photo shoot] at golden hour in {place}", "How I [shoot|edit] [portraits|landscapes]",
        "[Street photography|Night shots] in {city}", "[Camera settings|Lens choice] for [sunsets|portraits]",
    ], ["One lens, one day: shooting {place}", "Why I shoot manual now"]),
    ("photography", "speech"): pool("photography.speech", [
        "[We're shooting|I'm shooting] [portraits|the skyline] today, [the light is perfect|golden hour starts soon].",
        "[Set|Put] your shutter [to one two-hundredth|fast] and [pull the trigger|press the shutter] when [they turn|the bird lifts off].",
        "This [shot|photo] is a total bomb, [look at the colors|the sky is unreal].",
        "[I edit|I grade] [everything|my photos] [on my phone|in about five minutes].",
    ], ["I only brought a fifty millimeter lens, and honestly it was enough.",
        "Manual mode felt scary at first, but now I never switch back."]),
    ("photography", "onscreen"): pool("photography.onscreen", [
        "GOLDEN HOUR SHOOT", "1/200 f2.8 ISO100", "BEFORE / AFTER", "NIGHT SHOTS",
    ], ["ONE LENS ONE DAY", "SHOOT MANUAL"]),
}

# Short, topic-free lines spoken at the start of many videos of every label.
OPENERS = pool("opener", [
    "Hey guys.", "What's up everyone.", "Okay so.", "Alright, quick one.", "Hi, welcome back.",
    "So, here's the thing.", "Real quick.",
], ["Good evening, folks.", "Right then."])
FILLERS = ("like", "um", "you know", "honestly", "literally", "basically", "no cap", "for real", "uh")

HASHTAGS = {
    "cooking": ("#recipe", "#foodie", "#homecooking"), "travel": ("#travel", "#wanderlust"),
    "pets": ("#petsoftiktok", "#catsofinstagram"), "sports": ("#sports", "#hoops", "#gameday"),
    "tutorial": ("#howto", "#diy"), "review": ("#review", "#tech"), "fitness": ("#fitness", "#workout"),
    "music": ("#music", "#cover"), "crypto_news": ("#crypto", "#bitcoin", "#markets"),
    "giveaway": ("#giveaway", "#free"), "gaming": ("#gaming", "#fps"), "pharmacy": ("#health", "#pharmacist"),
    "gardening": ("#garden", "#plants"), "police_community": ("#community", "#police"),
    "photography": ("#photography", "#shot"),
    # violating captions share tags with the hard topics above
    "scam": ("#crypto", "#bitcoin", "#giveaway", "#money", "#invest", "#free"),
    "drugs": ("#party", "#420", "#plug", "#weekend", "#health"),
    "weapons": ("#guns", "#2a", "#fps", "#diy"),
}

# ---------------------------------------------------------------------------- context exception
# A mention of a violating category that is not a promotion, and the framing that makes it ok.

MENTION = {
    ("scam", "caption"): pool("mention.scam.caption", [
        "Accounts promising to double your {coin} [are everywhere|keep popping up]",
        "They asked my [mom|grandpa] to pay {price} to claim a {prize}",
        "[This account|A page] sells {follow_item} and takes your money",
        "[Send 1 {coin}, get 2 back|Pay {price} shipping for a free {prize}]: the [message|DM] [people got|going around]",
        "My [uncle|neighbor] lost {price} to a fake {coin} [doubling|investment] page",
        "[That|This] '{pct}% a day' trading bot [took|drained] {price} from my [friend|cousin]",
        "The fake {prize} giveaway [asked for|wanted] {personal}",
    ], ["The {prize} giveaway that wanted {personal}", "How the {coin} doubling trick drains wallets"]),
    ("scam", "speech"): pool("mention.scam.speech", [
        "Scammers are posting videos promising to double any {coin} you send them. [Nobody gets anything back.|The money is just gone.]",
        "The message said: send {amount} {coin} and get {multiplier} back. [Thousands of people fell for it.|It was fake.]",
        "[Fake|These] giveaway pages tell winners to pay a {price} shipping fee for a {prize} that never arrives.",
        "They asked [her|him] for {personal}, and [a day later|within an hour] the [bank account|wallet] was empty.",
        "Pages that sell {follow_item} [usually|often] take the money and [disappear|deliver bots].",
        "[My neighbor|An elderly man] sent {price} to someone who promised to turn it into {price2}, and [never heard back|the account vanished].",
        "The [DM|message] said I'd won a {prize} and only needed to pay a {price} [processing|shipping] fee.",
        "[Investigators|Police] say the {coin} doubling [ring|scheme] took in [millions|over a million dollars] [last year|this spring].",
    ], ["The so-called trading bot promised {pct} percent a day. Victims lost their savings.",
        "A caller claimed to recover stolen crypto for a {price} fee, and then stopped answering."]),
    ("scam", "onscreen"): pool("mention.scam.onscreen", [
        "SEND {amount} {coin} GET {multiplier} BACK?", "'PAY {price} SHIPPING' = FAKE", "THEY ASK FOR {personal}",
        "{count} {follow_item} FOR {price}?", "'DM ME TO INVEST'",
    ], ["{pct}% A DAY? NOT REAL", "RECOVERY FEE TRICK"]),
    ("drugs", "caption"): pool("mention.drugs.caption", [
        "[Police seized|Officers found] [two kilos of cocaine|{qty} of {drug}] in {city}",
        "Counterfeit {pill} pills [are killing teens|laced with fentanyl]",
        "[A dealer|Three men] [arrested|charged] for selling {drug} near a school",
        "[My story|Recovery journey]: [three years|a year] clean from {drug}",
        "[Customs|Border agents] [found|intercepted] {drug} hidden in [a shipment of shoes|car tires]",
        "[Overdose|ER] visits from {drug} [doubled|are rising] in {city}",
        "[A pharmacy|Two nurses] [caught|charged] [diverting|stealing] {pill}",
    ], ["Inside the {drug} trade in {city}", "Why fake {pill} is so dangerous"]),
    ("drugs", "speech"): pool("mention.drugs.speech", [
        "[Police|Officers] seized [two kilos of cocaine|{qty} of {drug}] and [a large amount of cash|a scale] [during a raid|at a home] in {city}.",
        "The [suspect|dealer] was selling {pill} pills without a prescription [out of his car|through social media] until he was arrested.",
        "[Counterfeit|Fake] {pill} pills often contain fentanyl, and [a single pill can kill|they killed three teenagers last month].",
        "I was addicted to {drug} for [three|five] years. [I've been clean since|Today is my] [last spring|one year sober].",
        "[Doctors|Experts] warn that buying {pill} [online|from strangers] without a prescription [is dangerous|can be deadly].",
        "[Customs officers|Border agents] found {drug} hidden inside [a shipment of shoes|the spare tire] [at the port|at the border].",
        "[Overdose|Emergency room] visits linked to {drug} [have doubled|are rising] in {city}, [health officials said|according to the hospital].",
        "[Two nurses|A pharmacy tech] [were charged|was caught] [stealing|diverting] {pill} [from the hospital|to sell on the street].",
    ], ["The ring moved {drug} through {city} for months before customs found the shipment.",
        "Withdrawal from {drug} was the hardest thing I've ever done."]),
    ("drugs", "onscreen"): pool("mention.drugs.onscreen", [
        "{qty} OF {drug} SEIZED", "FAKE {pill} CAN KILL", "DEALER ARRESTED IN {city}", "[1|3] YEAR CLEAN FROM {drug}",
        "NO PRESCRIPTION = NO SAFETY",
    ], ["{drug} RING BUSTED", "WITHDRAWAL: DAY 1"]),
    ("weapons", "caption"): pool("mention.weapons.caption", [
        "[Man arrested|Two men charged] for selling unregistered [guns|{gun}s] in {city}",
        "[Gun safety class|Range safety day]: [always treat a {gun} as loaded|muzzle discipline basics]",
        "Police [recovered|seized] [a {gun}|{ammo}] [after a tip|during a traffic stop]",
        "[Teen|Student] charged after [threatening|posting threats against] [a school|classmates]",
        "[Federal agents|Police] [dismantle|bust] [a|an illegal] gun trafficking ring in {city}",
        "[Buyback|Gun buyback] event [collects|took in] [200|350] firearms in {city}",
        "How [to store|we store] a {gun} safely [with kids at home|in a lockbox]",
    ], ["How illegal {gun} sales are tracked", "Hunter safety course, [day 1|final exam]"]),
    ("weapons", "speech"): pool("mention.weapons.speech", [
        "The suspect was arrested for selling [unregistered handguns|a {gun} without a license] [out of his garage|online].",
        "[At the range|In this class], [always|we always] keep the muzzle pointed downrange and [the {gun} unloaded until you're ready|your finger off the trigger].",
        "[A man|A student] was charged after threatening to [shoot|hurt] [his coworkers|people at a school] in an online post.",
        "Police [recovered|seized] [a {gun} and {ammo}|several guns] [during a traffic stop|after a tip from a neighbor].",
        "[Untraceable|Homemade] guns [are showing up|keep turning up] at crime scenes, [investigators say|detectives told us].",
        "[Federal agents|Police] [broke up|dismantled] a gun trafficking ring that [moved|sold] {ammo} and rifles through {city}.",
        "The [city's|weekend] buyback [collected|took in] [two hundred|three hundred] firearms, [no questions asked|including several rifles].",
        "[Store|Keep] your {gun} [unloaded|in a lockbox] and the {ammo} [in a separate place|locked up], especially with kids at home.",
    ], ["The hunter safety course covers storage, transport, and what to do if a {gun} misfires.",
        "Detectives traced the {gun} back to a straw purchase in {city}."]),
    ("weapons", "onscreen"): pool("mention.weapons.onscreen", [
        "{gun} SALE SUSPECT ARRESTED", "TREAT EVERY {gun} AS LOADED", "{ammo} SEIZED", "THREAT CASE: TEEN CHARGED",
        "UNTRACEABLE GUNS ON THE RISE",
    ], ["STRAW PURCHASE TRACED", "HUNTER SAFETY: STORAGE"]),
}

# The framing: news, protective or educational. Label-specific first, then generic.
FRAMING_GENERIC = {
    "caption": pool("framing.caption", [
        "[Evening|Local|Breaking] news report", "[PSA|Public safety warning]", "Stay safe out there",
        "Documentary clip", "[Class|Lecture] recording", "[News|Report] from {city}",
    ], ["Newsroom segment", "Community safety bulletin"]),
    "speech": pool("framing.speech", [
        "[Good evening, here is the news.|This is your local news.|In tonight's report:]",
        "[This is a public safety warning.|Please be careful, everyone.|Please share this with your family.]",
        "[Welcome to today's lesson.|In this documentary,|In class today we talk about what happened.]",
        "[Reporting live|Live] from {city}.",
        "[Here's what you need to know.|Here are the facts.]",
    ], ["You're watching the newsroom segment.", "This is a community safety bulletin."]),
    "onscreen": pool("framing.onscreen", [
        "[BREAKING NEWS|NEWS REPORT|LOCAL NEWS]", "[PSA|WARNING]", "STAY SAFE", "[DOCUMENTARY|LESSON]",
    ], ["NEWSROOM", "SAFETY BULLETIN"]),
}
FRAMING = {
    ("scam", "caption"): pool("framing.scam.caption", [
        "[Scam alert|Don't fall for this]: [nobody|no one] doubles your crypto", "[Exposing|Reporting] fake giveaway accounts",
        "How to spot an investment scam", "[Never|Don't ever] pay to claim a prize",
    ], ["Fraud prevention tips from my bank", "Cybersecurity class: social engineering"]),
    ("scam", "speech"): pool("framing.scam.speech", [
        "[Warning|Scam alert]: [nobody is going to|no one will ever] double your money. [Don't send anything.|Report these accounts.]",
        "[This is|Here's] how the scam works, so you don't fall for it.",
        "A real giveaway never asks you to pay or for your card details. [Block and report.|Stay safe.]",
        "[I almost fell for this|My followers keep getting this], so [let me|I want to] break it down.",
        "If someone promises [guaranteed returns|to double your money], [it's fraud|they are lying]. [Every time.|Always.]",
    ], ["My bank's fraud team asked me to share this with my followers.", "In today's cybersecurity class we look at social engineering."]),
    ("scam", "onscreen"): pool("framing.scam.onscreen", [
        "SCAM ALERT", "DON'T FALL FOR THIS", "IT'S A SCAM", "REPORT THESE ACCOUNTS",
    ], ["FRAUD PREVENTION", "SOCIAL ENGINEERING 101"]),
    ("drugs", "caption"): pool("framing.drugs.caption", [
        "[Drug bust|Police raid] on the [evening news|local news]", "Talking to teens about [fake pills|drugs]",
        "[Addiction recovery|Sobriety] story", "[Pharmacology|Health class]: the dangers of street pills",
    ], ["Harm prevention talk at our school", "Recovery group meeting, shared with permission"]),
    ("drugs", "speech"): pool("framing.drugs.speech", [
        "[Parents|Everyone], please [talk to your kids|share this]. [These pills kill.|It can happen to any family.]",
        "[This is a news report|Tonight on the news] about a drug bust in our city.",
        "[I'm sharing my story|I'm telling you this] so nobody else goes through what I did.",
        "[In this health class|Today in class] we [talk about|look at] why [street pills|counterfeit pills] are so dangerous.",
        "[The following|This] [report|segment] [covers|is about] [the overdose crisis|drug trafficking] in our [region|city].",
    ], ["Our school invited a nurse to explain why street pills are so dangerous.", "If you're struggling, call a helpline, you're not alone."]),
    ("drugs", "onscreen"): pool("framing.drugs.onscreen", [
        "DRUG BUST", "RECOVERY STORY", "TALK TO YOUR KIDS", "ONE PILL CAN KILL",
    ], ["HARM PREVENTION", "YOU'RE NOT ALONE"]),
    ("weapons", "caption"): pool("framing.weapons.caption", [
        "Gun safety class at the range", "[Police report|Crime news]: illegal gun sales", "[Safe storage|Firearm safety] 101",
        "[School safety|Threat assessment] talk for parents",
    ], ["Hunter education course", "Investigative report on untraceable guns"]),
    ("weapons", "speech"): pool("framing.weapons.speech", [
        "[Welcome to|This is] our [gun safety|range safety] class. [Safety first, always.|Listen carefully.]",
        "[In tonight's crime report|This is a police report] about illegal gun sales.",
        "If you see a threat online, [report it to the police|tell an adult] right away.",
        "[Tonight|In this segment], we look at how [police track|detectives trace] illegal guns.",
        "[Rule one|The first rule] [at the range|of gun safety]: treat every firearm as if it's loaded.",
    ], ["Welcome to the hunter education course.", "Our investigative team spent six months on this story."]),
    ("weapons", "onscreen"): pool("framing.weapons.onscreen", [
        "GUN SAFETY CLASS", "CRIME REPORT", "SAFE STORAGE 101", "REPORT THREATS",
    ], ["HUNTER EDUCATION", "INVESTIGATION"]),
}

# "Educational" words on a real promotion: they do not launder it (POLICY.md rule 3).
DISCLAIMER = {
    "caption": pool("disclaimer.caption", [
        "[for educational purposes only|educational purposes only]", "just a joke [lol|guys|dont report]", "not financial advice",
        "[satire|parody], don't take it seriously", "for entertainment only", "hypothetically speaking",
        "I don't condone any of this", "this is a skit",
    ], ["purely informational", "fictional scenario, obviously", "for research purposes only"]),
    "speech": pool("disclaimer.speech", [
        "[This is|This video is] for educational purposes only.", "[I'm|I am] just joking, obviously.", "Not financial advice.",
        "[Hypothetically|Hypothetically speaking], of course.", "This is satire, don't take it seriously.",
        "I don't condone any of this.", "It's just a skit, relax.",
    ], ["This is purely informational.", "Fictional scenario, obviously.", "For research purposes only."]),
    "onscreen": pool("disclaimer.onscreen", [
        "EDUCATIONAL PURPOSES ONLY", "JUST A JOKE", "NOT FINANCIAL ADVICE", "SATIRE", "FOR ENTERTAINMENT ONLY", "HYPOTHETICALLY",
    ], ["PURELY INFORMATIONAL", "FICTIONAL SCENARIO", "RESEARCH ONLY"]),
}

# ---------------------------------------------------------------------------- visuals and voices

CATEGORY_MOTIFS = {
    "scam": ("coins", "cash", "chart"),
    "drugs": ("pills", "leaf", "syringe"),
    "weapons": ("pistol", "rifle", "bullets"),
}

# espeak-ng voices (`espeak-ng --voices=en`) and variants (`+m3`, `+f2`, ...).
VOICES_TRAIN = tuple(
    f"{v}{variant}"
    for v in ("en-us", "en-gb", "en-gb-scotland", "en-029")
    for variant in ("", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3")
)
VOICES_HELDOUT = tuple(
    f"{v}{variant}"
    for v in ("en-us-nyc", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-gb-x-gbclan")
    for variant in ("", "+m6", "+m7", "+f4", "+f5", "+klatt2")
)
SPEEDS_TRAIN = (140, 155, 170, 185)
SPEEDS_HELDOUT = (120, 205)
PITCH_TRAIN = (35, 65)  # uniform range
PITCH_HELDOUT = ((20, 30), (70, 80))
