/**
 * Citizens' tickets and field interventions of the seeded territory: a few months of reports in
 * the four collectivities, of the eight categories (`ticket_categories`, seeded by the tickets
 * migration) and in every status, each with its history as the lifecycle would have written it
 * (who, when, from → to, note), its service-level due dates, duplicates attached to their
 * originals, and the work orders that handled them; plus planned works (maintenance, works on
 * the carriageway, near bus stops).
 *
 * Deterministic: the plan is drawn from the seed's own stream (`rng('tickets')`) and holds times
 * as offsets before the moment of seeding, so the same code writes the same rows (ids, places,
 * texts, statuses, intervals) at every run; only the absolute dates follow the clock.
 *
 * Chosen so that the seeded tickets never interfere with live use: every open ticket was reported
 * more than 7 days before the seed (so no new report is ever attached to one as a duplicate), a
 * "light out" is about a light point that is not in service (FAULT or MAINTENANCE), and no ticket
 * was closed more than 9 months before the seed (the retention of reporters' data, 12 months by
 * default, has nothing to erase in a freshly seeded hub).
 */
import type pg from 'pg';
import type { EquipmentSeed } from './equipment.js';
import { distToSegment, insideWithMargin, roundLonLat, toLonLat, toXY, type LonLat, type XY } from './geo.js';
import { rng, type Rng } from './rng.js';
import type { StreetSeed } from './streets.js';
import { AGGLO_ID, COLLECTIVITY_OF_COMMUNE, INSEE, type CommuneSeed } from './territory.js';

type TicketStatus = 'NEW' | 'ACKNOWLEDGED' | 'ASSIGNED' | 'IN_PROGRESS' | 'RESOLVED' | 'CLOSED' | 'REJECTED' | 'DUPLICATE';
type InterventionStatus = 'PLANNED' | 'ASSIGNED' | 'IN_PROGRESS' | 'DONE' | 'CANCELLED';

/** How many tickets and planned works the seed writes (checked by the seed). */
export const SEED_TICKETS = { tickets: 360, duplicates: 30, plannedWorks: 24 } as const;

const HOUR = 3_600;
const DAY = 24 * HOUR;

/** The categories of the tickets migration, with what the seed needs of them (hours as in the migration). */
const CATEGORIES = {
  LIGHT_OUT: { service: 'Éclairage public', agglo: false, ack: 24, resolve: 72, weight: 24, team: 'Équipe éclairage public' },
  OPEN_CABINET: { service: 'Éclairage public', agglo: false, ack: 2, resolve: 24, weight: 5, team: 'Équipe éclairage public' },
  TAG: { service: 'Propreté urbaine', agglo: false, ack: 48, resolve: 240, weight: 13, team: 'Équipe propreté' },
  ILLEGAL_DUMPING: { service: 'Propreté urbaine', agglo: false, ack: 24, resolve: 120, weight: 14, team: 'Équipe propreté' },
  DAMAGED_FURNITURE: { service: 'Voirie et mobilier urbain', agglo: false, ack: 48, resolve: 336, weight: 9, team: 'Équipe voirie' },
  POTHOLE: { service: 'Voirie et mobilier urbain', agglo: false, ack: 24, resolve: 336, weight: 12, team: 'Équipe voirie' },
  BUS_STOP_DAMAGED: { service: 'Transports urbains', agglo: true, ack: 24, resolve: 168, weight: 8, team: 'Régie des transports' },
  FULL_BIN: { service: 'Collecte des déchets', agglo: true, ack: 12, resolve: 48, weight: 15, team: 'Équipe collecte' },
} as const;
type Category = keyof typeof CATEGORIES;
const CATEGORY_CODES = Object.keys(CATEGORIES) as Category[];

const DESCRIPTIONS: Record<Category, readonly string[]> = {
  LIGHT_OUT: [
    'Le lampadaire devant le numéro {n} ne s’allume plus depuis plusieurs soirs.',
    'Éclairage éteint toute la nuit, la rue est très sombre.',
    'Le candélabre clignote sans arrêt à la tombée de la nuit.',
    'Lampadaire resté allumé en plein jour.',
  ],
  OPEN_CABINET: [
    'Armoire électrique ouverte, porte arrachée, câbles visibles.',
    'La porte de l’armoire d’éclairage est restée ouverte, des enfants jouent à côté.',
    'Coffret électrique fracturé au pied du mât.',
  ],
  TAG: ['Tag sur le mur de l’école, côté rue.', 'Graffitis sur l’abribus et le mobilier voisin.', 'Inscriptions à la bombe sur la façade de la salle communale.'],
  ILLEGAL_DUMPING: [
    'Dépôt sauvage : un matelas et des sacs de gravats sur le trottoir.',
    'Encombrants abandonnés près des conteneurs depuis le week-end.',
    'Déchets verts et cartons déposés au bord du chemin.',
  ],
  DAMAGED_FURNITURE: ['Banc cassé, une planche manque.', 'Potelet arraché au carrefour.', 'Barrière de sécurité pliée après un accrochage.', 'Panneau de rue tombé au sol.'],
  POTHOLE: ['Nid de poule profond sur la chaussée, dangereux pour les vélos.', 'Dalle de trottoir soulevée, risque de chute.', 'Affaissement de la chaussée devant le {n}.'],
  BUS_STOP_DAMAGED: ['Vitre de l’abribus brisée, éclats au sol.', 'Poteau d’arrêt couché, horaires illisibles.', 'Afficheur des horaires de l’arrêt éteint.'],
  FULL_BIN: ['Corbeille pleine qui déborde sur le trottoir.', 'Conteneur à verre plein, bouteilles posées autour.', 'Point de collecte débordant depuis trois jours.'],
};

const CLOSE_NOTES: Record<Category, readonly string[]> = {
  LIGHT_OUT: ['Lampe et driver remplacés, essai nocturne correct.', 'Fusible du mât remplacé.', 'Câble d’alimentation réparé, point lumineux rallumé.'],
  OPEN_CABINET: ['Porte remplacée et serrure changée, armoire sécurisée.', 'Armoire refermée et condamnée provisoirement.'],
  TAG: ['Tag effacé par hydrogommage.', 'Graffitis recouverts d’une peinture anti-tag.'],
  ILLEGAL_DUMPING: ['Dépôt enlevé, 1,2 m³ évacués en déchèterie.', 'Encombrants enlevés, secteur nettoyé.'],
  DAMAGED_FURNITURE: ['Banc réparé, planche remplacée.', 'Potelet reposé et scellé.', 'Panneau refixé.'],
  POTHOLE: ['Nid de poule rebouché à l’enrobé à froid.', 'Dalle reposée et calée.'],
  BUS_STOP_DAMAGED: ['Vitre remplacée.', 'Poteau redressé et horaires affichés.'],
  FULL_BIN: ['Corbeille vidée, fréquence de passage augmentée.', 'Conteneur vidé, abords nettoyés.'],
};

const REJECTION_NOTES = [
  'Domaine privé : le signalement a été transmis au propriétaire.',
  'Relève du gestionnaire de réseau (Enedis), transmis.',
  'Aucun problème constaté sur place.',
  'Signalement hors compétence de la collectivité, réorienté.',
];

const INTERVENTION_TITLES: Record<Category, string> = {
  LIGHT_OUT: 'Dépannage point lumineux',
  OPEN_CABINET: 'Mise en sécurité armoire électrique',
  TAG: 'Effacement de tag',
  ILLEGAL_DUMPING: 'Enlèvement dépôt sauvage',
  DAMAGED_FURNITURE: 'Réparation mobilier urbain',
  POTHOLE: 'Réparation de chaussée',
  BUS_STOP_DAMAGED: 'Réparation arrêt de bus',
  FULL_BIN: 'Vidage point de collecte',
};

/** Planned works: what, which team, whether they take part of the carriageway, whether near a stop they affect it. */
const PLANNED_WORKS: readonly { title: string; description: string; team: string; carriageway: boolean; stops: boolean; kind: 'cabinet' | 'street' | 'stop' }[] = [
  { title: 'Maintenance préventive de l’armoire', description: 'Contrôle annuel, serrage, mesures d’isolement.', team: 'Équipe éclairage public', carriageway: false, stops: false, kind: 'cabinet' },
  { title: 'Remplacement des lanternes par des LED', description: 'Relamping de la rue, nacelle sur la chaussée.', team: 'Équipe éclairage public', carriageway: true, stops: true, kind: 'street' },
  { title: 'Réfection de la chaussée', description: 'Rabotage et pose d’enrobé, circulation alternée.', team: 'Équipe voirie', carriageway: true, stops: true, kind: 'street' },
  { title: 'Élagage des alignements', description: 'Taille des arbres d’alignement, stationnement interdit.', team: 'Équipe espaces verts', carriageway: true, stops: false, kind: 'street' },
  { title: 'Nettoyage haute pression des trottoirs', description: 'Nettoyage mécanisé et lavage des trottoirs.', team: 'Équipe propreté', carriageway: false, stops: false, kind: 'street' },
  { title: 'Mise en accessibilité de l’arrêt', description: 'Rehaussement du quai, arrêt déplacé provisoirement.', team: 'Régie des transports', carriageway: true, stops: true, kind: 'stop' },
];

const FIRST_NAMES = ['Camille', 'Léa', 'Manon', 'Chloé', 'Inès', 'Jade', 'Louise', 'Emma', 'Lucas', 'Hugo', 'Nathan', 'Louis', 'Gabriel', 'Jules', 'Arthur', 'Théo', 'Sacha', 'Martine', 'Michel', 'Nadia'];
const LAST_NAMES = ['Martin', 'Bernard', 'Petit', 'Durand', 'Leroy', 'Moreau', 'Simon', 'Laurent', 'Lefèvre', 'Michel', 'Garcia', 'David', 'Bertrand', 'Roux', 'Vincent', 'Fournier', 'Morel', 'Girard', 'André', 'Mercier'];
const ascii = (text: string) => text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();

/** A ticket of the plan: times in seconds before the moment of seeding. */
export interface TicketSeed {
  id: number;
  category: Category;
  collectivityId: string;
  service: string;
  status: TicketStatus;
  description: string;
  location: LonLat;
  inseeCode: string;
  address: string | null;
  equipmentId: string | null;
  duplicateOf: number | null;
  source: 'APP' | 'STAFF';
  reporter: { sub: string | null; name: string | null; email: string | null; phone: string | null };
  created: number;
  updated: number;
  acknowledged: number | null;
  resolved: number | null;
  closed: number | null;
  version: number;
}

export interface TicketHistorySeed {
  ticketId: number;
  at: number;
  action: 'CREATED' | 'TRANSITION' | 'DUPLICATE_ATTACHED' | 'NOTE';
  from: TicketStatus | null;
  to: TicketStatus | null;
  actor: string | null;
  roles: string[];
  note: string | null;
}

export interface InterventionSeed {
  id: number;
  collectivityId: string;
  origin: 'TICKET' | 'PLANNED';
  ticketId: number | null;
  equipmentId: string | null;
  title: string;
  description: string | null;
  location: LonLat;
  status: InterventionStatus;
  assignee: string | null;
  team: string | null;
  scheduledStart: number | null;
  scheduledEnd: number | null;
  started: number | null;
  closed: number | null;
  closeNotes: string | null;
  minutesSpent: number | null;
  affectsCarriageway: boolean;
  stopIds: string[];
  routeIds: string[];
  createdBy: string;
  created: number;
  updated: number;
  version: number;
}

export interface InterventionHistorySeed {
  interventionId: number;
  at: number;
  action: 'CREATED' | 'ASSIGNED' | 'SCHEDULED' | 'STARTED' | 'CLOSED' | 'CANCELLED';
  from: InterventionStatus | null;
  to: InterventionStatus | null;
  actor: string;
  roles: string[];
  note: string | null;
}

export interface TicketPlan {
  tickets: TicketSeed[];
  history: TicketHistorySeed[];
  interventions: InterventionSeed[];
  interventionHistory: InterventionHistorySeed[];
}

/** The staff accounts the seeded history names (no such account exists: they are ids in tokens). */
const operatorOf = (collectivityId: string) => `seed-operator-${collectivityId}`;
const agentsOf = (collectivityId: string) => [1, 2, 3].map((n) => `seed-agent-${collectivityId}-${n}`);

interface Spot {
  xy: XY;
  inseeCode: string;
  equipmentId: string | null;
}

/** The whole plan, pure and deterministic. */
export function buildTickets(
  communes: readonly CommuneSeed[],
  streets: readonly StreetSeed[],
  equipment: readonly EquipmentSeed[],
  /** GTFS stop_id (the stop's reference) → the routes serving it. */
  routesOfStop: ReadonlyMap<string, readonly string[]> = new Map(),
): TicketPlan {
  const random = rng('tickets');
  const ringOf = new Map(communes.map((c) => [c.code, c.ring]));
  const located = equipment.filter((e) => e.location !== null && e.status !== 'DECOMMISSIONED' && e.inseeCode !== null);
  const byKind = (kind: string, filter: (e: EquipmentSeed) => boolean = () => true) => located.filter((e) => e.kind === kind && filter(e));
  const lit = [INSEE.CHALONS, INSEE.FAGNIERES, INSEE.SAINT_MARTIN] as const;
  const lights = new Map(lit.map((insee) => [insee, byKind('LIGHT_POINT', (e) => e.inseeCode === insee)]));
  const brokenLights = new Map(lit.map((insee) => [insee, random.shuffle(byKind('LIGHT_POINT', (e) => e.inseeCode === insee && e.status !== 'IN_SERVICE'))]));
  const cabinets = new Map(lit.map((insee) => [insee, byKind('ELECTRICAL_CABINET', (e) => e.inseeCode === insee)]));
  const stops = byKind('BUS_STOP');
  const streetsOf = new Map<string, StreetSeed[]>();
  for (const street of streets) streetsOf.set(street.inseeCode, [...(streetsOf.get(street.inseeCode) ?? []), street]);

  const nearestStreet = (xy: XY, insee: string): string | null => {
    let best: { name: string; d: number } | null = null;
    for (const street of streetsOf.get(insee) ?? []) {
      for (let i = 1; i < street.line.length; i++) {
        const d = distToSegment(xy, street.line[i - 1], street.line[i]);
        if (!best || d < best.d) best = { name: street.name, d };
      }
    }
    return best && best.d <= 500 ? best.name : null;
  };
  /** A point a few metres from `base`, inside its commune (2 m from the border at least). */
  const near = (base: XY, insee: string, min: number, max: number): XY => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const angle = random.range(0, 2 * Math.PI);
      const r = random.range(min, max);
      const xy: XY = [base[0] + r * Math.cos(angle), base[1] + r * Math.sin(angle)];
      if (insideWithMargin(xy, ringOf.get(insee)!, 2)) return xy;
    }
    return base;
  };
  const spotFor = (category: Category, insee: string): Spot => {
    const pickFrom = (list: readonly EquipmentSeed[]) => list[random.int(0, list.length - 1)];
    if (category === 'LIGHT_OUT') {
      // A light point that is out of order (the live reports of working ones are left to the simulator and the tests).
      const list = brokenLights.get(insee as (typeof lit)[number])!;
      const light = list.length ? list[random.int(0, list.length - 1)] : pickFrom(lights.get(insee as (typeof lit)[number])!);
      return { xy: near(toXY(light.location!), insee, 3, 12), inseeCode: insee, equipmentId: light.id };
    }
    if (category === 'OPEN_CABINET') {
      const cabinet = pickFrom(cabinets.get(insee as (typeof lit)[number])!);
      return { xy: near(toXY(cabinet.location!), insee, 1, 4), inseeCode: insee, equipmentId: cabinet.id };
    }
    if (category === 'BUS_STOP_DAMAGED') {
      const stop = pickFrom(stops);
      return { xy: near(toXY(stop.location!), stop.inseeCode!, 1, 5), inseeCode: stop.inseeCode!, equipmentId: stop.id };
    }
    // Along a lit street (a light point's position, a few metres off), no asset linked.
    const light = pickFrom(lights.get(insee as (typeof lit)[number])!);
    return { xy: near(toXY(light.location!), insee, 2, 15), inseeCode: insee, equipmentId: null };
  };

  const citizens = Array.from({ length: 140 }, (_, i) => ({
    sub: `seed-citizen-${String(i + 1).padStart(4, '0')}`,
    name: random.chance(0.6) ? `${random.pick(FIRST_NAMES)} ${random.pick(LAST_NAMES)}` : null,
  }));
  const reporterFor = (source: 'APP' | 'STAFF', r: Rng): TicketSeed['reporter'] => {
    if (source === 'APP' && r.chance(0.7)) {
      const citizen = r.pick(citizens);
      return { sub: citizen.sub, name: citizen.name, email: null, phone: null };
    }
    const first = r.pick(FIRST_NAMES);
    const last = r.pick(LAST_NAMES);
    const phone = `+33 6 39 98 ${String(r.int(0, 99)).padStart(2, '0')} ${String(r.int(0, 99)).padStart(2, '0')}`;
    const byPhone = source === 'STAFF' || r.chance(0.3);
    return {
      sub: null,
      name: r.chance(0.7) ? `${first} ${last}` : null,
      email: byPhone ? null : `${ascii(first)}.${ascii(last)}${r.int(1, 99)}@example.org`,
      phone: byPhone ? phone : null,
    };
  };

  // Every category in every status at least once, then the rest by weight.
  const STATUS_WEIGHTS: [Exclude<TicketStatus, 'DUPLICATE'>, number][] = [
    ['NEW', 8],
    ['ACKNOWLEDGED', 10],
    ['ASSIGNED', 10],
    ['IN_PROGRESS', 8],
    ['RESOLVED', 12],
    ['CLOSED', 44],
    ['REJECTED', 8],
  ];
  const weighted = <T>(items: readonly [T, number][]): T => {
    let x = random.range(0, items.reduce((s, [, w]) => s + w, 0));
    for (const [item, w] of items) if ((x -= w) < 0) return item;
    return items[items.length - 1][0];
  };
  const plan: { category: Category; status: Exclude<TicketStatus, 'DUPLICATE'> }[] = [];
  for (const category of CATEGORY_CODES) for (const [status] of STATUS_WEIGHTS) plan.push({ category, status });
  while (plan.length < SEED_TICKETS.tickets) {
    plan.push({ category: weighted(CATEGORY_CODES.map((c) => [c, CATEGORIES[c].weight] as [Category, number])), status: weighted(STATUS_WEIGHTS) });
  }
  const communeWeights: [string, number][] = [
    [INSEE.CHALONS, 76],
    [INSEE.FAGNIERES, 12],
    [INSEE.SAINT_MARTIN, 12],
  ];

  type Draft = Omit<TicketSeed, 'id' | 'duplicateOf'> & { key: number; duplicateOf: number | null; events: Omit<TicketHistorySeed, 'ticketId'>[]; work: DraftWork | null };
  type DraftWork = Omit<InterventionSeed, 'id' | 'ticketId'> & { events: Omit<InterventionHistorySeed, 'interventionId'>[] };
  const drafts: Draft[] = [];

  for (const [key, { category, status }] of plan.entries()) {
    const c = CATEGORIES[category];
    const insee = weighted(communeWeights);
    const spot = spotFor(category, insee);
    const collectivityId = c.agglo ? AGGLO_ID : COLLECTIVITY_OF_COMMUNE[insee];
    const operator = operatorOf(collectivityId);
    const source: 'APP' | 'STAFF' = random.chance(0.88) ? 'APP' : 'STAFF';
    const reporter = reporterFor(source, random);
    // Ages: open tickets between 8 and 45 days, resolved 3 to 13 (so resolved less than
    // TICKETS_AUTO_CLOSE_DAYS ago: the retention worker closes older ones), closed and rejected up to 270 (9 months).
    const open = status === 'NEW' || status === 'ACKNOWLEDGED' || status === 'ASSIGNED' || status === 'IN_PROGRESS';
    const created = Math.round(
      (open ? random.range(8, status === 'NEW' ? 16 : 45) : status === 'RESOLVED' ? random.range(3, 13) : random.range(30, 270)) * DAY,
    );
    const events: Draft['events'] = [
      { at: created, action: 'CREATED', from: null, to: 'NEW', actor: source === 'STAFF' ? operator : reporter.sub, roles: source === 'STAFF' ? ['operator'] : reporter.sub ? ['citizen'] : [], note: null },
    ];
    let t = created;
    // Moved by `move` (a closure): typed wide so that the checks below are not narrowed to NEW.
    let current = 'NEW' as TicketStatus;
    let acknowledged: number | null = null;
    let resolved: number | null = null;
    let closed: number | null = null;
    let work: DraftWork | null = null;
    const move = (to: TicketStatus, after: number, actor: string, roles: string[], note: string | null = null) => {
      // Never later than a day before the seed for a settled ticket, an hour for an open one.
      t = Math.max(Math.round(Math.min(t - after, t - 60)), open ? HOUR : DAY);
      events.push({ at: t, action: 'TRANSITION', from: current, to, actor, roles, note });
      current = to;
    };
    const lateAck = random.chance(0.2);
    const ackAfter = (lateAck ? random.range(1.1, 3) : random.range(0.05, 0.9)) * c.ack * HOUR;
    if (status !== 'NEW') {
      if (status === 'REJECTED' && random.chance(0.4)) {
        move('REJECTED', ackAfter, operator, ['operator'], random.pick(REJECTION_NOTES));
        acknowledged = t;
        closed = t;
      } else {
        move('ACKNOWLEDGED', ackAfter, operator, ['operator']);
        acknowledged = t;
      }
    }
    const viaWork =
      status !== 'NEW' && status !== 'ACKNOWLEDGED' && current === 'ACKNOWLEDGED' &&
      (status === 'REJECTED' ? random.chance(0.4) : status === 'RESOLVED' || status === 'CLOSED' ? random.chance(0.85) : true);
    if (current === 'ACKNOWLEDGED' && status === 'REJECTED' && !viaWork) {
      move('REJECTED', random.range(1, 48) * HOUR, operator, ['operator'], random.pick(REJECTION_NOTES));
      closed = t;
    }
    if (viaWork) {
      const toAgent = random.chance(0.7);
      const assignee = toAgent ? random.pick(agentsOf(collectivityId)) : null;
      const team = toAgent ? null : c.team;
      move('ASSIGNED', random.range(0.2, 12) * HOUR, operator, ['operator'], 'work order created');
      const workCreated = t;
      const scheduledStart = workCreated - Math.round(random.range(2, 36) * HOUR);
      const workEvents: DraftWork['events'] = [
        { at: workCreated, action: 'CREATED', from: null, to: 'ASSIGNED', actor: operator, roles: ['operator'], note: 'from ticket' },
      ];
      work = {
        collectivityId,
        origin: 'TICKET',
        equipmentId: spot.equipmentId,
        title: INTERVENTION_TITLES[category],
        description: null,
        location: roundLonLat(toLonLat(spot.xy)),
        status: 'ASSIGNED',
        assignee,
        team,
        scheduledStart: Math.max(scheduledStart, HOUR),
        scheduledEnd: Math.max(scheduledStart - Math.round(random.range(1, 4) * HOUR), 1),
        started: null,
        closed: null,
        closeNotes: null,
        minutesSpent: null,
        affectsCarriageway: category === 'POTHOLE',
        stopIds: [],
        routeIds: [],
        createdBy: operator,
        created: workCreated,
        updated: workCreated,
        version: 1,
        events: workEvents,
      };
      const worker = assignee ?? operator;
      const workerRoles = assignee ? ['agent'] : ['operator'];
      if (status === 'REJECTED') {
        move('REJECTED', random.range(1, 24) * HOUR, operator, ['operator'], random.pick(REJECTION_NOTES));
        closed = t;
        work.status = 'CANCELLED';
        work.closed = t;
        work.updated = t;
        work.version = 2;
        workEvents.push({ at: t, action: 'CANCELLED', from: 'ASSIGNED', to: 'CANCELLED', actor: operator, roles: ['operator'], note: 'ticket rejected' });
      } else if (status !== 'ASSIGNED') {
        move('IN_PROGRESS', random.range(1, 40) * HOUR, worker, workerRoles, 'work order started');
        work.status = 'IN_PROGRESS';
        work.started = t;
        work.updated = t;
        work.version = 2;
        workEvents.push({ at: t, action: 'STARTED', from: 'ASSIGNED', to: 'IN_PROGRESS', actor: worker, roles: workerRoles, note: null });
        if (status === 'RESOLVED' || status === 'CLOSED') {
          const minutes = random.int(3, 48) * 5;
          move('RESOLVED', minutes * 60 + random.range(0, 4) * HOUR, worker, workerRoles, 'work order done');
          resolved = t;
          work.status = 'DONE';
          work.closed = t;
          work.updated = t;
          work.version = 3;
          work.closeNotes = random.pick(CLOSE_NOTES[category]);
          work.minutesSpent = minutes;
          workEvents.push({ at: t, action: 'CLOSED', from: 'IN_PROGRESS', to: 'DONE', actor: worker, roles: workerRoles, note: null });
        }
      }
    } else if (status === 'RESOLVED' || status === 'CLOSED') {
      // Settled on the spot by the service, without a work order.
      move('RESOLVED', random.range(0.1, 1.2) * c.resolve * HOUR, operator, ['operator'], random.pick(CLOSE_NOTES[category]));
      resolved = t;
    }
    if (status === 'CLOSED') {
      move('CLOSED', random.range(1, 7) * DAY, operator, ['operator']);
      closed = t;
    }
    const description = random.pick(DESCRIPTIONS[category]).replace('{n}', String(random.int(1, 120)));
    drafts.push({
      key,
      category,
      collectivityId,
      service: c.service,
      status,
      description,
      location: roundLonLat(toLonLat(spot.xy)),
      inseeCode: spot.inseeCode,
      address: nearestStreet(spot.xy, spot.inseeCode),
      equipmentId: spot.equipmentId,
      duplicateOf: null,
      source,
      reporter,
      created,
      updated: t,
      acknowledged,
      resolved,
      closed,
      version: events.length,
      events,
      work,
    });
  }

  // Duplicates: the same problem reported again 5 to 35 m away, within the week after the original (while it was open).
  const originals = random.shuffle(drafts);
  for (let i = 0; i < SEED_TICKETS.duplicates; i++) {
    const original = originals[i];
    const openUntil = original.resolved ?? original.closed ?? 0;
    // Offsets count back from the seed: the window runs from the original's report to 6 days later, while it was open.
    const latest = Math.max(original.created - 6 * DAY, openUntil + HOUR, DAY);
    if (latest >= original.created - HOUR) continue;
    const created = Math.round(random.range(latest, original.created - HOUR));
    const xy = near(toXY(original.location), original.inseeCode, 5, 35);
    const source: 'APP' | 'STAFF' = 'APP';
    const reporter = reporterFor(source, random);
    drafts.push({
      key: plan.length + i,
      category: original.category,
      collectivityId: original.collectivityId,
      service: original.service,
      status: 'DUPLICATE',
      description: random.pick(DESCRIPTIONS[original.category]).replace('{n}', String(random.int(1, 120))),
      location: roundLonLat(toLonLat(xy)),
      inseeCode: original.inseeCode,
      address: nearestStreet(xy, original.inseeCode),
      equipmentId: original.equipmentId,
      duplicateOf: original.key,
      source,
      reporter,
      created,
      updated: created,
      acknowledged: null,
      resolved: null,
      closed: null,
      version: 1,
      events: [{ at: created, action: 'CREATED', from: null, to: 'DUPLICATE', actor: reporter.sub, roles: reporter.sub ? ['citizen'] : [], note: null }],
      work: null,
    });
    original.events.push({ at: created, action: 'DUPLICATE_ATTACHED', from: null, to: null, actor: reporter.sub, roles: reporter.sub ? ['citizen'] : [], note: null });
    original.updated = Math.min(original.updated, created);
  }

  // Ids in the order of creation (oldest first), as the sequences would have given them.
  drafts.sort((a, b) => b.created - a.created || a.key - b.key);
  const idOfKey = new Map(drafts.map((d, i) => [d.key, i + 1]));
  const tickets: TicketSeed[] = [];
  const history: TicketHistorySeed[] = [];
  const works: (DraftWork & { ticketId: number | null })[] = [];
  for (const d of drafts) {
    const id = idOfKey.get(d.key)!;
    const { key: _key, events, work, ...row } = d;
    tickets.push({ ...row, id, duplicateOf: d.duplicateOf === null ? null : idOfKey.get(d.duplicateOf)! });
    for (const event of events) {
      const note = event.action === 'DUPLICATE_ATTACHED' ? 'attached' : event.note;
      history.push({ ...event, ticketId: id, note });
    }
    if (work) works.push({ ...work, ticketId: id });
  }
  // Notes naming other rows, once the ids are known.
  for (const entry of history) {
    if (entry.action === 'DUPLICATE_ATTACHED') {
      const duplicate = tickets.find((t) => t.duplicateOf === entry.ticketId && t.created === entry.at)!;
      entry.note = `ticket ${duplicate.id} attached as a duplicate`;
    }
  }

  // Planned works: six per collectivity, past (done), current, coming (assigned or planned), one called off.
  const plannedRandom = rng('tickets:planned');
  for (const collectivityId of [...Object.values(COLLECTIVITY_OF_COMMUNE), AGGLO_ID]) {
    const insee = collectivityId === AGGLO_ID ? null : Object.entries(COLLECTIVITY_OF_COMMUNE).find(([, id]) => id === collectivityId)![0];
    const operator = operatorOf(collectivityId);
    const timeline: InterventionStatus[] = ['DONE', 'DONE', 'IN_PROGRESS', 'ASSIGNED', 'PLANNED', 'CANCELLED'];
    for (const [n, status] of timeline.entries()) {
      const works6 = collectivityId === AGGLO_ID ? PLANNED_WORKS.filter((w) => w.kind === 'stop') : PLANNED_WORKS;
      const what = works6[n % works6.length];
      let equipmentId: string | null = null;
      let xy: XY;
      if (what.kind === 'cabinet' && insee) {
        const cabinet = plannedRandom.pick(cabinets.get(insee as (typeof lit)[number])!);
        equipmentId = cabinet.id;
        xy = toXY(cabinet.location!);
      } else if (what.kind === 'stop' || !insee) {
        const stop = plannedRandom.pick(insee ? stops.filter((s) => s.inseeCode === insee) : stops);
        // Stops are the agglomeration's: a commune's works at one name it among the stops affected, not as its asset.
        equipmentId = insee ? null : stop.id;
        xy = toXY(stop.location!);
      } else {
        xy = toXY(plannedRandom.pick(lights.get(insee as (typeof lit)[number])!).location!);
      }
      const stopIds = what.stops
        ? stops
            .filter((s) => Math.hypot(toXY(s.location!)[0] - xy[0], toXY(s.location!)[1] - xy[1]) <= 400)
            .map((s) => s.reference)
            .slice(0, 4)
        : [];
      const routeIds = [...new Set(stopIds.flatMap((id) => routesOfStop.get(id) ?? []))].sort();
      // Scheduled relative to the seed: done ones in the past weeks, the current one today, the others ahead.
      const start =
        status === 'DONE' ? Math.round(plannedRandom.range(5, 60) * DAY) : status === 'IN_PROGRESS' ? Math.round(plannedRandom.range(1, 6) * HOUR) : -Math.round(plannedRandom.range(2, 40) * DAY);
      const length = Math.round(plannedRandom.range(3, 30) * HOUR);
      const created = Math.max(start, 0) + Math.round(plannedRandom.range(7, 30) * DAY);
      const assignee = status === 'PLANNED' ? null : plannedRandom.chance(0.4) ? plannedRandom.pick(agentsOf(collectivityId)) : null;
      const team = status === 'PLANNED' || assignee ? null : what.team;
      const events: InterventionHistorySeed[] = [];
      const push = (at: number, action: InterventionHistorySeed['action'], from: InterventionStatus | null, to: InterventionStatus, actor = operator, roles = ['operator'], note: string | null = null) =>
        events.push({ interventionId: 0, at, action, from, to, actor, roles, note });
      push(created, 'CREATED', null, status === 'PLANNED' ? 'PLANNED' : 'ASSIGNED', operator, ['operator'], 'planned');
      push(created - HOUR, 'SCHEDULED', status === 'PLANNED' ? 'PLANNED' : 'ASSIGNED', status === 'PLANNED' ? 'PLANNED' : 'ASSIGNED');
      const worker = assignee ?? operator;
      const workerRoles = assignee ? ['agent'] : ['operator'];
      let started: number | null = null;
      let closed: number | null = null;
      let closeNotes: string | null = null;
      let minutesSpent: number | null = null;
      let finalStatus: InterventionStatus = status === 'PLANNED' ? 'PLANNED' : 'ASSIGNED';
      if (status === 'DONE' || status === 'IN_PROGRESS') {
        started = start;
        push(started, 'STARTED', 'ASSIGNED', 'IN_PROGRESS', worker, workerRoles);
        finalStatus = 'IN_PROGRESS';
      }
      if (status === 'DONE') {
        closed = Math.max(start - length, 1);
        closeNotes = what.carriageway ? 'Travaux terminés, chantier replié et voie rendue à la circulation.' : 'Travaux terminés, contrôles effectués.';
        minutesSpent = Math.round(((start - closed) / 60) * plannedRandom.range(0.5, 1));
        push(closed, 'CLOSED', 'IN_PROGRESS', 'DONE', worker, workerRoles);
        finalStatus = 'DONE';
      }
      if (status === 'CANCELLED') {
        closed = Math.round(created - plannedRandom.range(1, 5) * DAY);
        push(closed, 'CANCELLED', 'ASSIGNED', 'CANCELLED', operator, ['operator'], 'reporté à l’an prochain (budget)');
        finalStatus = 'CANCELLED';
      }
      works.push({
        collectivityId,
        origin: 'PLANNED',
        ticketId: null,
        equipmentId,
        title: insee || equipmentId === null ? what.title : `${what.title} — ${stops.find((s) => s.id === equipmentId)!.name}`,
        description: what.description,
        location: roundLonLat(toLonLat(xy)),
        status: finalStatus,
        assignee,
        team,
        scheduledStart: start,
        scheduledEnd: start - length,
        started,
        closed,
        closeNotes,
        minutesSpent: minutesSpent === null ? null : Math.min(minutesSpent, 100_000),
        affectsCarriageway: what.carriageway,
        stopIds,
        routeIds,
        createdBy: operator,
        created,
        updated: events[events.length - 1].at,
        version: events.length - 1 > 0 ? events.length - 1 : 1,
        events: events.map(({ interventionId: _, ...e }) => e),
      });
    }
  }
  works.sort((a, b) => b.created - a.created || (a.ticketId ?? 0) - (b.ticketId ?? 0));
  const interventions: InterventionSeed[] = [];
  const interventionHistory: InterventionHistorySeed[] = [];
  for (const [i, { events, ...work }] of works.entries()) {
    const id = i + 1;
    interventions.push({ ...work, id });
    for (const event of events) {
      const note = event.note === 'from ticket' ? `from ticket ${work.ticketId}` : event.note;
      interventionHistory.push({ ...event, interventionId: id, note });
    }
  }
  // The ticket's notes name the work order that moved it.
  const workOfTicket = new Map(interventions.filter((w) => w.ticketId !== null).map((w) => [w.ticketId!, w.id]));
  for (const entry of history) {
    if (entry.note?.startsWith('work order ')) entry.note = `work order ${workOfTicket.get(entry.ticketId)} ${entry.note.slice('work order '.length)}`;
  }
  // History in the order it happened (the ids of its sequence follow it).
  history.sort((a, b) => b.at - a.at || a.ticketId - b.ticketId);
  interventionHistory.sort((a, b) => b.at - a.at || a.interventionId - b.interventionId);
  return { tickets, history, interventions, interventionHistory };
}

/**
 * Writes the plan in the seed's transaction: bulk inserts with `unnest` arrays, the times as the
 * transaction's start minus each offset, the service-level due dates from each category's hours,
 * then the sequences moved past the ids written. No event and no GRC outbox row: the seed is the
 * past, not a change.
 */
export async function insertTickets(client: pg.ClientBase, plan: TicketPlan): Promise<void> {
  const { tickets, history, interventions, interventionHistory } = plan;
  await client.query(
    `INSERT INTO tickets (id, category_code, collectivity_id, service, status, description, geom, insee_code, address, equipment_id,
                          duplicate_of, source, reporter_sub, reporter_name, reporter_email, reporter_phone, created_at, updated_at,
                          acknowledged_at, resolved_at, closed_at, ack_due_at, resolve_due_at, version)
     SELECT t.id, t.category, t.collectivity_id, t.service, t.status, t.description, ST_SetSRID(ST_MakePoint(t.lon, t.lat), 4326), t.insee_code,
            t.address, t.equipment_id, t.duplicate_of, t.source, t.reporter_sub, t.reporter_name, t.reporter_email, t.reporter_phone,
            now() - make_interval(secs => t.created), now() - make_interval(secs => t.updated),
            now() - make_interval(secs => t.acknowledged), now() - make_interval(secs => t.resolved), now() - make_interval(secs => t.closed),
            now() - make_interval(secs => t.created) + make_interval(hours => c.ack_hours),
            now() - make_interval(secs => t.created) + make_interval(hours => c.resolve_hours), t.version
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::text[], $10::text[],
                 $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::float8[], $19::float8[],
                 $20::float8[], $21::float8[], $22::float8[], $23::int[])
       AS t(id, category, collectivity_id, service, status, description, lon, lat, insee_code, address, equipment_id, duplicate_of, source,
            reporter_sub, reporter_name, reporter_email, reporter_phone, created, updated, acknowledged, resolved, closed, version)
     JOIN ticket_categories c ON c.code = t.category
     ORDER BY t.id`,
    [
      tickets.map((t) => t.id),
      tickets.map((t) => t.category),
      tickets.map((t) => t.collectivityId),
      tickets.map((t) => t.service),
      tickets.map((t) => t.status),
      tickets.map((t) => t.description),
      tickets.map((t) => t.location[0]),
      tickets.map((t) => t.location[1]),
      tickets.map((t) => t.inseeCode),
      tickets.map((t) => t.address),
      tickets.map((t) => t.equipmentId),
      tickets.map((t) => t.duplicateOf),
      tickets.map((t) => t.source),
      tickets.map((t) => t.reporter.sub),
      tickets.map((t) => t.reporter.name),
      tickets.map((t) => t.reporter.email),
      tickets.map((t) => t.reporter.phone),
      tickets.map((t) => t.created),
      tickets.map((t) => t.updated),
      tickets.map((t) => t.acknowledged),
      tickets.map((t) => t.resolved),
      tickets.map((t) => t.closed),
      tickets.map((t) => t.version),
    ],
  );
  await client.query(
    `INSERT INTO ticket_history (id, ticket_id, at, action, from_status, to_status, actor_sub, actor_roles, note)
     SELECT row_number() OVER (), h.ticket_id, now() - make_interval(secs => h.at), h.action, h.from_status, h.to_status, h.actor, string_to_array(h.roles, ','), h.note
     FROM unnest($1::bigint[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
       AS h(ticket_id, at, action, from_status, to_status, actor, roles, note)`,
    [
      history.map((h) => h.ticketId),
      history.map((h) => h.at),
      history.map((h) => h.action),
      history.map((h) => h.from),
      history.map((h) => h.to),
      history.map((h) => h.actor),
      history.map((h) => h.roles.join(',')),
      history.map((h) => h.note),
    ],
  );
  await client.query(
    `INSERT INTO interventions (id, collectivity_id, origin, ticket_id, equipment_id, title, description, geom, status, assignee_sub, team,
                                scheduled_start, scheduled_end, started_at, closed_at, close_notes, minutes_spent, affects_carriageway,
                                stop_ids, route_ids, created_by, created_at, updated_at, version)
     SELECT i.id, i.collectivity_id, i.origin, i.ticket_id, i.equipment_id, i.title, i.description, ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326),
            i.status, i.assignee, i.team, now() - make_interval(secs => i.scheduled_start), now() - make_interval(secs => i.scheduled_end),
            now() - make_interval(secs => i.started), now() - make_interval(secs => i.closed), i.close_notes, i.minutes_spent, i.affects_carriageway,
            CASE WHEN i.stop_ids = '' THEN '{}'::text[] ELSE string_to_array(i.stop_ids, ',') END,
            CASE WHEN i.route_ids = '' THEN '{}'::text[] ELSE string_to_array(i.route_ids, ',') END,
            i.created_by, now() - make_interval(secs => i.created), now() - make_interval(secs => i.updated), i.version
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], $10::text[],
                 $11::text[], $12::text[], $13::float8[], $14::float8[], $15::float8[], $16::float8[], $17::text[], $18::int[], $19::boolean[],
                 $20::text[], $21::text[], $22::text[], $23::float8[], $24::float8[], $25::int[])
       AS i(id, collectivity_id, origin, ticket_id, equipment_id, title, description, lon, lat, status, assignee, team, scheduled_start, scheduled_end,
            started, closed, close_notes, minutes_spent, affects_carriageway, stop_ids, route_ids, created_by, created, updated, version)
     ORDER BY i.id`,
    [
      interventions.map((i) => i.id),
      interventions.map((i) => i.collectivityId),
      interventions.map((i) => i.origin),
      interventions.map((i) => i.ticketId),
      interventions.map((i) => i.equipmentId),
      interventions.map((i) => i.title),
      interventions.map((i) => i.description),
      interventions.map((i) => i.location[0]),
      interventions.map((i) => i.location[1]),
      interventions.map((i) => i.status),
      interventions.map((i) => i.assignee),
      interventions.map((i) => i.team),
      interventions.map((i) => i.scheduledStart),
      interventions.map((i) => i.scheduledEnd),
      interventions.map((i) => i.started),
      interventions.map((i) => i.closed),
      interventions.map((i) => i.closeNotes),
      interventions.map((i) => i.minutesSpent),
      interventions.map((i) => i.affectsCarriageway),
      interventions.map((i) => i.stopIds.join(',')),
      interventions.map((i) => i.routeIds.join(',')),
      interventions.map((i) => i.createdBy),
      interventions.map((i) => i.created),
      interventions.map((i) => i.updated),
      interventions.map((i) => i.version),
    ],
  );
  await client.query(
    `INSERT INTO intervention_history (id, intervention_id, at, action, from_status, to_status, actor_sub, actor_roles, note)
     SELECT row_number() OVER (), h.intervention_id, now() - make_interval(secs => h.at), h.action, h.from_status, h.to_status, h.actor, string_to_array(h.roles, ','), h.note
     FROM unnest($1::bigint[], $2::float8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
       AS h(intervention_id, at, action, from_status, to_status, actor, roles, note)`,
    [
      interventionHistory.map((h) => h.interventionId),
      interventionHistory.map((h) => h.at),
      interventionHistory.map((h) => h.action),
      interventionHistory.map((h) => h.from),
      interventionHistory.map((h) => h.to),
      interventionHistory.map((h) => h.actor),
      interventionHistory.map((h) => h.roles.join(',')),
      interventionHistory.map((h) => h.note),
    ],
  );
  for (const table of ['tickets', 'ticket_history', 'interventions', 'intervention_history']) {
    await client.query(`SELECT setval(pg_get_serial_sequence($1, 'id'), greatest((SELECT max(id) FROM ${table}), 1))`, [table]);
  }
}

/** What the seed checks of the tickets it wrote (each a count of violations), before committing. */
export const TICKET_CHECKS = `
    SELECT 'tickets outside the commune of their insee_code' AS check, count(*)::int AS n
      FROM tickets t LEFT JOIN commune c ON c.insee_code = t.insee_code WHERE c.insee_code IS NULL OR NOT ST_Covers(c.geom, t.geom)
    UNION ALL
    SELECT 'municipal tickets not answered by their commune', count(*)::int
      FROM tickets t JOIN ticket_categories k ON k.code = t.category_code JOIN commune c ON c.insee_code = t.insee_code
     WHERE k.service_category NOT IN ('BUS_NETWORK', 'WASTE_COLLECTION') AND t.collectivity_id IS DISTINCT FROM c.collectivity_id
    UNION ALL
    SELECT 'duplicates not within 50 m and 7 days of their original', count(*)::int
      FROM tickets d JOIN tickets o ON o.id = d.duplicate_of
     WHERE ST_Distance(d.geom::geography, o.geom::geography) > 50 OR d.created_at < o.created_at OR d.created_at > o.created_at + interval '7 days'
        OR d.category_code <> o.category_code
    UNION ALL
    SELECT 'open tickets reported within the last 7 days', count(*)::int
      FROM tickets WHERE status IN ('NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS') AND created_at > now() - interval '7 days'
    UNION ALL
    SELECT 'tickets whose dates do not follow each other', count(*)::int
      FROM tickets WHERE acknowledged_at < created_at OR resolved_at < acknowledged_at OR closed_at < created_at OR updated_at < created_at OR updated_at > now()
    UNION ALL
    SELECT 'ticket histories that do not end in the ticket''s status', count(*)::int
      FROM tickets t WHERE t.status IS DISTINCT FROM (SELECT h.to_status FROM ticket_history h WHERE h.ticket_id = t.id AND h.to_status IS NOT NULL ORDER BY h.id DESC LIMIT 1)
    UNION ALL
    SELECT 'work orders whose history does not end in their status', count(*)::int
      FROM interventions i WHERE i.status IS DISTINCT FROM (SELECT h.to_status FROM intervention_history h WHERE h.intervention_id = i.id ORDER BY h.id DESC LIMIT 1)
    UNION ALL
    SELECT 'work orders of a ticket in another collectivity or of an asset elsewhere', count(*)::int
      FROM interventions i LEFT JOIN tickets t ON t.id = i.ticket_id LEFT JOIN equipment e ON e.id = i.equipment_id
     WHERE (t.id IS NOT NULL AND t.collectivity_id <> i.collectivity_id) OR (e.id IS NOT NULL AND i.origin = 'PLANNED' AND e.collectivity_id <> i.collectivity_id)
    UNION ALL
    SELECT 'closed-out work orders without notes and minutes', count(*)::int
      FROM interventions WHERE status = 'DONE' AND (close_notes IS NULL OR minutes_spent IS NULL OR closed_at IS NULL OR started_at IS NULL)`;
