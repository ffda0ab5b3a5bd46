/**
 * Name lists for the generated street network. Namesakes are the usual ones of French towns
 * (people, places, trees, trades); the radial avenues and the inner boulevards carry names of
 * real Châlons streets, but their generated geometry is not the real one.
 */

/** Namesakes taking "Rue", "Allée"… directly: "Rue Victor Hugo", "Rue des Tilleuls". */
export const STREET_NAMESAKES: readonly string[] = [
  'Victor Hugo', 'Jean Jaurès', 'Jules Ferry', 'Louis Pasteur', 'Émile Zola', 'Gambetta', 'Carnot',
  'Pierre Curie', 'Marie Curie', 'Jean Moulin', 'Anatole France', 'Voltaire', 'Jean-Jacques Rousseau',
  'Molière', 'Racine', 'Corneille', 'La Fontaine', 'George Sand', 'Alfred de Musset', 'Lamartine',
  'Paul Bert', 'Jean Macé', 'Condorcet', 'Danton', 'Mirabeau', 'Lazare Hoche', 'Kléber', 'Marceau',
  'Denis Diderot', "Jeanne d'Arc", 'Henri IV', 'Sully', 'Colbert', 'Vauban', 'Turenne', 'Buffon',
  'Lavoisier', 'Ampère', 'Arago', 'Branly', 'Édouard Herriot', 'Léon Bourgeois', 'Aristide Briand',
  'Georges Clemenceau', 'Raymond Poincaré', 'Paul Doumer', 'Albert Camus', 'Antoine de Saint-Exupéry',
  'Guy de Maupassant', 'Gustave Flaubert', 'Honoré de Balzac', 'Stendhal', 'Charles Péguy',
  'Paul Verlaine', 'Arthur Rimbaud', 'Jacques Prévert', 'Paul Éluard', 'Louis Aragon', 'Colette',
  'Simone Veil', 'Lucie Aubrac', 'Germaine Tillion', 'Louise Michel', 'Olympe de Gouges',
  'Camille Claudel', 'Berthe Morisot', 'Auguste Renoir', 'Claude Monet', 'Paul Cézanne',
  'Eugène Delacroix', 'Hector Berlioz', 'Claude Debussy', 'Maurice Ravel', 'Georges Bizet',
  'Frédéric Chopin', 'Gustave Eiffel', 'Louis Blériot', 'Roland Garros', 'Jean Mermoz',
  'Hélène Boucher', 'Nicolas Appert', 'Pierre Bayen', 'Joseph Joffre', 'Ferdinand Foch',
  'Philippe Leclerc', 'Pierre Brossolette', 'Gabriel Péri', 'Danielle Casanova', 'Guy Môquet',
  'Jean Zay', 'Pierre Mendès France', 'Léo Lagrange', 'Marcel Pagnol', 'Jean Giono',
  'Alphonse Daudet', 'Edmond Rostand', 'Jules Verne', 'Alexandre Dumas', 'Théophile Gautier',
  'Charles Baudelaire', 'Joachim du Bellay', 'Pierre de Ronsard', 'François Rabelais', 'Montaigne',
  'Blaise Pascal', 'René Descartes', 'Montesquieu', 'Jean de La Bruyère', 'Fénelon', 'Bossuet',
  'Saint-Exupère', 'Saint-Jacques', 'Saint-Loup', 'Saint-Éloi', 'Saint-Dominique', 'Sainte-Croix',
  'des Tilleuls', 'des Marronniers', 'des Peupliers', 'des Acacias', 'des Charmes', 'des Chênes',
  'des Érables', 'des Frênes', 'des Bouleaux', 'des Platanes', 'des Saules', 'des Aulnes',
  'des Noisetiers', 'des Cerisiers', 'des Pommiers', 'des Lilas', 'des Glycines', 'des Rosiers',
  'des Iris', 'des Violettes', 'des Bleuets', 'des Coquelicots', 'des Jonquilles', 'des Primevères',
  'du Moulin', 'de la Fontaine', 'du Lavoir', 'du Puits', 'de la Forge', 'des Tanneurs',
  'des Tisserands', 'des Vignerons', 'des Jardiniers', 'des Bateliers', 'des Meuniers', 'de la Poste',
  "de l'Église", 'de la Gare', 'du Stade', 'des Écoles', 'du Marché', 'de la Halle', 'du Port',
  'du Canal', 'de la Marne', 'du Mau', 'du Nau', 'des Prés', 'des Champs', 'des Vignes', 'des Jardins',
  'des Vergers', 'de la Prairie', 'des Sablons', 'de la Noue', 'des Longues Raies', 'des Aulnaies',
  "de l'Abbaye", 'du Prieuré', 'du Cloître', 'des Templiers', 'des Cordeliers', 'des Ursulines',
  'des Minimes', 'de la Commanderie', 'du Château', 'du Bastion', 'des Remparts', 'de la Citadelle',
  'de Champagne', 'de Lorraine', "d'Alsace", 'de Bourgogne', 'de Picardie', 'des Ardennes',
  "de l'Argonne", 'de Reims', 'de Vitry', 'de Sézanne', 'de Montmirail', "d'Épernay", 'de Troyes',
  'de Verdun', 'de Valmy', 'de Suippes', 'de Mourmelon', 'de Juvigny', 'de Recy', 'de Sarry',
  'de Coolus', 'de Compertrix', 'de Matougues', 'de Chepy', 'de Cheniers', 'de Thibie', 'de Veuve',
  'du 8 Mai 1945', 'du 11 Novembre', 'du 14 Juillet', 'de la Libération', 'de la Résistance',
  'de la Paix', 'de la République', 'de la Liberté', "de l'Égalité", 'de la Fraternité',
  "des Droits de l'Homme", "de l'Europe", 'des Nations', 'des Alliés', 'des Anciens Combattants',
  'du Docteur Schweitzer', 'du Docteur Roux', 'du Général Delestraint', 'du Colonel Fabien',
  'du Commandant Charcot', 'du Maréchal Lyautey', 'du Président Wilson', 'du Lieutenant Ferrand',
];

/** Prefixes of ordinary streets, with weights (most are "Rue"). */
export const STREET_KINDS: readonly { prefix: string; weight: number }[] = [
  { prefix: 'Rue', weight: 80 },
  { prefix: 'Allée', weight: 10 },
  { prefix: 'Chemin', weight: 4 },
  { prefix: 'Impasse', weight: 3 },
  { prefix: 'Passage', weight: 3 },
];

/** Names of the long axes found inside each town's grid ("Avenue …"). */
export const AVENUE_NAMESAKES: readonly string[] = [
  'Avenue Jean Jaurès', 'Avenue de la République', 'Avenue Gambetta', 'Avenue Jean Moulin',
  'Avenue du Général de Gaulle', 'Avenue Kennedy', 'Avenue des Alliés', 'Avenue Pierre Semard',
  'Avenue Aristide Briand', 'Avenue Victor Hugo', 'Avenue Carnot', "Avenue de l'Europe",
  'Avenue du Maréchal Foch', 'Avenue de la Libération', 'Avenue Louis Pasteur', 'Avenue Georges Pompidou',
  'Avenue Jean Monnet', 'Avenue Robert Schuman', 'Avenue Winston Churchill', 'Avenue François Mitterrand',
  'Avenue des Tilleuls', 'Avenue de Champagne', 'Avenue de la Marne', 'Avenue des Vignes',
  'Avenue Saint-Exupéry', 'Avenue Paul Doumer', 'Avenue Clemenceau', 'Avenue de Verdun',
  'Avenue du 8 Mai 1945', 'Avenue Léon Blum', 'Avenue Pierre Brossolette', 'Avenue Jean Zay',
];

/** Radial roads out of Châlons' centre: real names of its main entrances (geometry generated). */
export const RADIAL_AVENUES: readonly { name: string; bearing: number }[] = [
  { name: 'Avenue du Président Roosevelt', bearing: 8 },
  { name: 'Avenue de Sainte-Menehould', bearing: 62 },
  { name: 'Avenue du Maréchal Leclerc', bearing: 100 },
  { name: 'Avenue de Strasbourg', bearing: 128 },
  { name: 'Avenue du Général Sarrail', bearing: 168 },
  { name: 'Avenue de Paris', bearing: 222 },
  { name: 'Avenue du Maréchal Juin', bearing: 268 },
  { name: 'Avenue de Reims', bearing: 312 },
];

/** The boulevards ringing the old centre, as consecutive arcs (real names, generated geometry). */
export const INNER_BOULEVARDS: readonly string[] = [
  'Boulevard Vaubécourt', 'Boulevard Anatole France', 'Boulevard Victor Hugo',
  'Boulevard Hippolyte Faure', 'Boulevard Léon Blum', 'Boulevard Justin Press',
];

/** Arcs of the outer ring road. */
export const OUTER_BOULEVARDS: readonly string[] = [
  'Boulevard Winston Churchill', 'Boulevard Robert Schuman', 'Boulevard Jean Monnet', 'Boulevard Pompidou',
];

/** Names of schools (school names of this kind are borne by many French schools). */
export const SCHOOL_NAMESAKES: readonly string[] = [
  'Jules Ferry', 'Jean Macé', 'Paul Bert', 'Louis Pasteur', 'Victor Hugo', 'Jean Jaurès', 'Marie Curie',
  'Jacques Prévert', 'Jean de La Fontaine', 'Charles Perrault', 'George Sand', 'Anatole France',
  'Paul Langevin', 'Condorcet', 'Louise Michel', 'Simone Veil', 'Antoine de Saint-Exupéry', 'Albert Camus',
  'Jules Verne', 'Pierre Bayen', 'Les Tilleuls', 'Les Marronniers', 'Le Petit Prince', 'Les Coquelicots',
  'Arc-en-Ciel', 'La Fontaine', 'Les Prés', 'Le Jard', 'Jean Moulin', 'Lucie Aubrac', 'Camille Claudel',
  'Nicolas Appert', 'Pierre Curie', 'Jean Zay', 'Georges Brassens', 'Robert Desnos', 'Paul Éluard',
  'Émile Zola', 'Frédéric Mistral', 'Les Vignes', 'Maurice Ravel', 'Colette',
];

export const SPORTS_HALL_NAMES: readonly string[] = [
  'Gymnase Pierre de Coubertin', 'Gymnase Léo Lagrange', 'Gymnase Jean Bouin', 'Salle Suzanne Lenglen',
  'Gymnase Alain Mimoun', 'Complexe sportif Tony Parker', 'Gymnase Marcel Cerdan', 'Salle Jean Borotra',
  'Gymnase Roland Garros', 'Salle omnisports Marie Marvingt', 'Gymnase Georges Carpentier', 'Salle Marie-José Pérec',
];

/** Bus stops with no cross street near them (on entrance roads) take a place name. */
export const STOP_PLACE_NAMES: readonly string[] = [
  'Les Grèves', 'Le Mont', 'La Ferme', 'Les Sablons', 'Zone artisanale', 'Les Hauts', 'La Croix',
  'Le Moulin', 'Le Bois', 'Les Terres Rouges', 'La Vigne', 'Le Calvaire', 'Les Pâtis', 'La Garenne',
  'Le Pont', 'Les Chaumes', 'La Source', 'Les Ormes', "Le Château d'Eau", "Zone d'activités",
  'La Sucrerie', 'Les Noues', 'Le Stade', 'La Vallée', 'Les Peupliers', 'Le Carrefour', 'Les Longues Royes',
  'La Briqueterie', 'Le Cimetière', 'Les Prés Bas',
];
